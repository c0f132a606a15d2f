"""The job spec: what a user sees for good and bad specs, overrides, the schema."""

import glob
import os

import pytest
import yaml

from raydl import checks
from raydl.errors import SpecError
from raydl.spec import JobSpec, apply_overrides, load_spec, validate_spec

MINIMAL = {
    "name": "t",
    "data": {"source": {"type": "builtin", "name": "digits"}, "label": "target"},
    "model": {"arch": "mlp"},
}


def problems(raw) -> list[str]:
    with pytest.raises(SpecError) as e:
        validate_spec(raw)
    return e.value.problems


def with_(path: str, value):
    raw = yaml.safe_load(yaml.safe_dump(MINIMAL))
    return apply_overrides(raw, [f"{path}={yaml.safe_dump(value, default_flow_style=True).strip()}"])


def test_minimal_spec_fills_defaults():
    spec = validate_spec(dict(MINIMAL))
    assert spec.train.workers == 2
    assert spec.data.split.method == "stratified"
    assert spec.train.checkpoint.metric == "val_loss"


def test_typo_key_names_path_and_suggests():
    (line,) = problems(with_("train.epoch", 3))
    assert line.startswith("train.epoch: unknown key; did you mean 'epochs'?")
    assert "allowed: " in line and "batch_size" in line


def test_typo_key_inside_tagged_union_uses_users_path():
    raw = dict(MINIMAL, data={"source": {"type": "builtin", "name": "digits", "nmae": 1}, "label": "target"})
    (line,) = problems(raw)
    assert line.startswith("data.source.nmae: unknown key; did you mean 'name'?")
    assert "allowed: limit, name, path, subset, type" in line


def test_wrong_type_names_value():
    (line,) = problems(with_("train.epochs", "three"))
    assert line.startswith("train.epochs: must be a valid integer")
    assert "got 'three'" in line


def test_negative_lr():
    assert problems(with_("train.optimizer.lr", -1)) == ["train.optimizer.lr: must be greater than 0, got -1"]


def test_unknown_model_suggests_close_name_and_lists_all():
    (line,) = problems(with_("model.arch", "cnnn"))
    assert line.startswith("model.arch: unknown model 'cnnn'; did you mean 'cnn'?")
    from raydl.models import MODELS

    assert f"available: {', '.join(MODELS.names())} (or 'module:function'" in line
    assert {"bert", "cnn", "gpt2", "gru", "lstm", "mlp", "resnet", "vae", "vit"} <= set(MODELS.names())


def test_literal_lists_allowed_values():
    (line,) = problems(with_("train.strategy", "horovod"))
    assert line == "train.strategy: must be 'ddp' or 'deepspeed', got 'horovod'"


def test_all_problems_reported_at_once():
    raw = with_("train.epochs", 0)
    raw = apply_overrides(
        raw,
        [
            "train.optimizer.lr=-1",
            "model.arch=resnt",
            "data.label=y",
            "compress.distill={student: {arch: mlp}, alpha: 2}",
        ],
    )
    found = problems(raw)
    paths = [p.split(":")[0] for p in found]
    assert paths == ["model.arch", "train.epochs", "train.optimizer.lr", "compress.distill.alpha"]


def test_cross_section_rules():
    raw = apply_overrides(
        with_("data.label", "y"),
        ["train.checkpoint.metric=val_auc", "train.batch_size=1", "train.precision=fp16"],
    )
    found = problems(raw)
    assert "data.label: the builtin 'digits' has label column 'target', got 'y'" in found
    assert any(
        p.startswith(
            "train.checkpoint.metric: 'val_auc' is not reported by "
            "classification training; reported: train_loss"
        )
        for p in found
    )
    assert any(p.startswith("train.batch_size: the global batch (1)") for p in found)
    assert any(p.startswith("train.precision: fp16 needs a GPU") for p in found)


def test_language_modeling_needs_text_and_an_unstratified_split():
    raw = apply_overrides(with_("data.task", "language_modeling"), ["data.source.name=bbc_news"])
    found = problems(raw)
    assert "data.text: language_modeling trains on token ids; set data.text (e.g. {column: text})" in found
    assert any(p.startswith("data.split.method: 'stratified' stratifies on a label") for p in found)
    # a text builtin serves its texts to a language model: no label or task mismatch
    assert not any(p.startswith(("data.label", "data.task")) for p in found)
    ok = apply_overrides(raw, ["data.text={column: text}", "data.split.method=random", "model.arch=gpt2"])
    assert validate_spec(ok).data.task == "language_modeling"
    cv = apply_overrides(ok, ["evaluate.cross_validation={k: 3}"])
    (line,) = problems(cv)
    assert line.startswith("evaluate.cross_validation: scores labelled predictions")


def test_model_params_checked_against_builder():
    (line,) = problems(with_("model.params", {"hiden": [8]}))
    assert line.startswith("model.params.hiden: unknown parameter of model 'mlp'; did you mean 'hidden'?")


def test_unimplemented_feature_fails_with_a_message_that_says_so(monkeypatch):
    # this version builds every section it describes: a stand-in feature shows the rule
    monkeypatch.setattr(checks, "_UNIMPLEMENTED", [("compress.prune_amount", lambda v: v is not None)])
    (line,) = problems(with_("compress", {"prune_amount": 0.3}))
    assert line == (
        "compress.prune_amount: 0.3 is not implemented in this version of raydl "
        "yet; remove it or use the default"
    )


def test_user_code_model_by_module_function():
    spec = validate_spec(with_("model.arch", "raydl.models.mlp:mlp"))
    assert spec.model.arch == "raydl.models.mlp:mlp"
    (line,) = problems(with_("model.arch", "no_such_module_xyz:build"))
    assert "cannot import module 'no_such_module_xyz'" in line


def test_overrides_parse_yaml_values_and_create_sections(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    spec = load_spec(
        path,
        [
            "train.epochs=3",
            "model.params.hidden=[16, 8]",
            "train.early_stopping.patience=2",
            "train.grad_clip=0.5",
        ],
    )
    assert spec.train.epochs == 3
    assert spec.model.params == {"hidden": [16, 8]}
    assert spec.train.early_stopping.patience == 2
    assert spec.train.grad_clip == 0.5


def test_bad_override_and_bad_yaml(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    with pytest.raises(SpecError, match=r"train\.epochs\.x: is not a section|train.epochs: is not"):
        load_spec(path, ["train.epochs=3", "train.epochs.x=1"])
    with pytest.raises(SpecError, match="is not written dotted.path=value"):
        load_spec(path, ["train.epochs"])
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML at line"):
        load_spec(path)
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "missing.yaml")
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")  # an image given as the spec
    with pytest.raises(SpecError) as e:
        load_spec(path)
    assert e.value.lines() == [f"{path}: not a YAML job spec (a binary file: byte 0x89 at offset 0)"]


def test_resolved_spec_round_trips():
    spec = validate_spec(dict(MINIMAL))
    assert validate_spec(yaml.safe_load(spec.to_yaml())) == spec


def test_json_schema_describes_fields():
    schema = JobSpec.model_json_schema()
    assert schema["additionalProperties"] is False
    train = schema["$defs"]["TrainSpec"]["properties"]
    assert "Global batch size" in train["batch_size"]["description"]


@pytest.mark.parametrize(
    "path", sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "jobs", "*.yaml")))
)
def test_every_example_job_validates_and_says_how_to_run(path):
    spec = load_spec(path, local_paths=False)
    with open(path) as f:
        text = f.read()
    assert text.startswith("#"), "an example job starts with a comment saying what it is"
    assert f"raydl run jobs/{os.path.basename(path)}" in text
    assert spec.name
    try:
        load_spec(path)
    except SpecError as e:  # its data is made first: only that path is missing, and the job says how
        assert all(line.startswith("data.source.path:") and "does not exist" in line for line in e.lines())
        assert "scripts/" in text
