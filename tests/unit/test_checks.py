"""Checks a spec gets before Ray starts that span fields or look at the disk: local paths
that do not exist, an images folder without classes, each arch's params."""

import pytest
import yaml

from raydl.checks import validate_spec
from raydl.cli import main
from raydl.errors import SpecError

TABLE = {
    "name": "t",
    "data": {"source": {"type": "parquet", "path": "rows.parquet"}, "label": "y"},
    "model": {"arch": "mlp"},
}


def problems(raw, **kwargs) -> list[str]:
    with pytest.raises(SpecError) as e:
        validate_spec(raw, **kwargs)
    return e.value.lines()


def with_source(**source):
    return {**TABLE, "data": {**TABLE["data"], "source": source}}


def test_a_local_data_path_must_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (line,) = problems(TABLE)
    assert line == (
        f"data.source.path: 'rows.parquet' does not exist (relative to the working directory {tmp_path})"
    )
    (line,) = problems(with_source(type="csv", path=str(tmp_path / "part-*.csv")))
    assert line == f"data.source.path: no files match '{tmp_path}/part-*.csv'"
    (tmp_path / "rows.parquet").write_bytes(b"")
    assert validate_spec(TABLE).data.source.path == "rows.parquet"
    # URIs and jobs that run elsewhere are checked where they run
    assert validate_spec(with_source(type="parquet", path="s3://bucket/rows.parquet"))
    assert validate_spec(with_source(type="parquet", path="/nowhere/rows.parquet"), local_paths=False)


def test_an_images_folder_needs_a_sub_folder_per_class(tmp_path):
    raw = {**with_source(type="images", path=str(tmp_path)), "model": {"arch": "cnn"}}
    raw["data"]["image"] = {"shape": [1, 8, 8]}
    (line,) = problems(raw)
    assert line.startswith(f"data.source.path: '{tmp_path}' is not a folder of class sub-folders")
    (tmp_path / "cat").mkdir()
    assert validate_spec(raw).data.source.type == "images"


def test_pretrained_weights_and_tokenizer_paths_must_exist(tmp_path):
    raw = yaml.safe_load(yaml.safe_dump(TABLE))
    raw["data"]["source"] = {"type": "builtin", "name": "bbc_news"}
    raw["data"]["text"] = {"tokenizer": {"type": "pretrained", "path": str(tmp_path / "tok.json")}}
    raw["model"] = {"arch": "embedding_bag", "pretrained": {"path": str(tmp_path / "w.safetensors")}}
    raw["data"]["label"] = "label"
    assert sorted(problems(raw)) == [
        f"data.text.tokenizer.path: '{tmp_path}/tok.json' does not exist",
        f"model.pretrained.path: '{tmp_path}/w.safetensors' does not exist",
    ]


def _raydl(monkeypatch, *args: str) -> int:
    """The raydl command in this process, as its console script runs it."""
    monkeypatch.setattr("sys.argv", ["raydl", *args])
    with pytest.raises(SystemExit) as e:
        main()
    return e.value.code


def test_validate_says_what_is_missing_and_skip_paths_leaves_it_to_the_cluster(tmp_path, monkeypatch, capsys):
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump(with_source(type="parquet", path=str(tmp_path / "gone.parquet"))))
    assert _raydl(monkeypatch, "validate", str(spec)) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: data.source.path: '{tmp_path}/gone.parquet' does not exist"
    )
    assert _raydl(monkeypatch, "validate", str(spec), "--skip-paths") == 0
    assert "is a valid job spec" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arch", "params", "line"),
    [
        ("cnn", {"channels": [8, 0]}, "model.params.channels[1]: must be greater than or equal to 1, got 0"),
        ("mlp", {"dropout": 1.0}, "model.params.dropout: must be less than 1, got 1.0"),
        ("mlp", {"activation": "swish"}, "model.params.activation: must be 'relu', 'gelu', 'tanh' or 'silu'"),
        ("vit", {"dim": 30}, "model.params: dim (30) must be a multiple of heads (4)"),
        (
            "resnet",
            {"widths": [8, 16]},
            "model.params: widths [8, 16] and blocks [1, 1, 1] must have one length",
        ),
        ("gpt2", {"heads": 3}, "model.params: dim (128) must be a multiple of heads (3)"),
    ],
)
def test_each_arch_params_are_validated_before_ray_starts(arch, params, line):
    raw = {**TABLE, "model": {"arch": arch, "params": params}}
    assert any(p.startswith(line) for p in problems(raw, local_paths=False)), problems(raw, local_paths=False)


def test_params_keep_what_the_user_wrote():
    """The builder keeps its defaults: data facts (vocab_size, …) still reach it."""
    spec = validate_spec({**TABLE, "model": {"arch": "mlp", "params": {"hidden": [8]}}}, local_paths=False)
    assert spec.model.params == {"hidden": [8]}
