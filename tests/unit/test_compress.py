"""The compression stage without Ray: the gate refuses a candidate built to lose too much,
validation lines, and every technique's saved model loads through Predictor.from_run and
answers as the candidate that was measured."""

import json

import numpy as np
import pytest
import torch

from raydl.backends import TorchBackend, apply_recipe, write_selected
from raydl.checks import apply_overrides, validate_spec
from raydl.compress.candidates import Candidate, torch_saver
from raydl.compress.gate import apply_gate
from raydl.compress.measure import measure, outputs
from raydl.compress.stage import compress
from raydl.data.preprocess import Preprocessor
from raydl.errors import RaydlError, SpecError
from raydl.models import build_model
from raydl.predict import Predictor
from raydl.rundir import RunDir
from raydl.spec.compress import MeasureSpec, SelectSpec
from raydl.train.checkpoint import save_weights

FEATURES = 16
CONFIG = {"arch": "mlp", "params": {"hidden": [64, 64]}, "input_shape": [FEATURES], "num_outputs": 3}
QUICK = MeasureSpec(warmup=1, repetitions=5, throughput_batches=2, batch_size=16)


def pre() -> Preprocessor:
    return Preprocessor(
        task="classification",
        label="y",
        feature_columns=[f"f{i}" for i in range(FEATURES)],
        input_shape=[FEATURES],
        center=[0.0] * FEATURES,
        scale=[1.0] * FEATURES,
        classes=["a", "b", "c"],
    )


@pytest.fixture(scope="module")
def trained():
    """A small MLP fitted (for a second) to a separable 3-class problem, and its test rows."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, FEATURES, generator=g)
    y = (x[:, 0] > 0.5).long() + (x[:, 1] > 0).long()
    model = build_model("mlp", (FEATURES,), 3, CONFIG["params"], None)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only contend on a shared machine
    for _ in range(100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[:400]), y[:400]).backward()
        opt.step()
    torch.set_num_threads(threads)
    return model.eval(), x[400:].numpy(), y[400:].numpy()


def make_run(tmp_path, model, spec_yaml: str) -> RunDir:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "spec.yaml").write_text(spec_yaml)
    pre().save(run / "preprocessor")
    save_weights(run / "checkpoints" / "best", model.state_dict(), CONFIG)
    return RunDir(run)


def test_the_gate_refuses_a_candidate_built_to_drop_more_than_the_limit(trained):
    model, x, y = trained
    broken = build_model("mlp", (FEATURES,), 3, CONFIG["params"], None)
    broken.load_state_dict(model.state_dict())
    first = next(broken.parameters())
    with torch.no_grad():  # noise on the first layer's weights: it must lose accuracy
        first.add_(torch.randn(first.shape, generator=torch.Generator().manual_seed(1)) * 2.0)
    p = pre()
    original = Candidate("original", "torch", TorchBackend(model, "classification"), 1, lambda d: {})
    noisy = Candidate("noisy", "torch", TorchBackend(broken.eval(), "classification"), 1, lambda d: {})
    ref = outputs(original, p, x)
    rows = [measure(c, p, x, y, ["accuracy"], ref, size, QUICK) for c, size in ((original, 100), (noisy, 10))]
    assert rows[0]["metrics"]["accuracy"] - rows[1]["metrics"]["accuracy"] > 0.05
    # prefer size: the noisy one is ten times smaller, and still never selected
    assert apply_gate(rows, SelectSpec(max_metric_drop=0.01, prefer="size"), "accuracy") == "original"
    assert rows[1]["passed"] is False and rows[1]["gate"].startswith("accuracy drop 0.")
    assert "> max_metric_drop 0.01" in rows[1]["gate"]
    assert rows[1]["selected"] is False and rows[0]["selected"] is True
    # a limit that allows the drop lets the smaller one through
    assert apply_gate(rows, SelectSpec(max_metric_drop=1.0, prefer="size"), "accuracy") == "noisy"
    # a budget nobody meets: nothing is selected
    assert apply_gate(rows, SelectSpec(latency_budget_ms=1e-9), "accuracy") is None
    assert all("> latency_budget_ms" in r["gate"] for r in rows)


def test_a_lower_is_better_metric_drops_when_it_grows():
    rows = [
        {"name": "original", "metrics": {"rmse": 1.0}, "latency_p50_ms": 2.0, "size_bytes": 10},
        {"name": "worse", "metrics": {"rmse": 1.5}, "latency_p50_ms": 1.0, "size_bytes": 5},
        {"name": "better", "metrics": {"rmse": 0.995}, "latency_p50_ms": 1.5, "size_bytes": 5},
    ]
    assert apply_gate(rows, SelectSpec(max_metric_drop=0.1), "rmse") == "better"
    assert rows[1]["gate"] == "rmse drop 0.5000 > max_metric_drop 0.1"


def digits(**sections):
    return {
        "name": "d",
        "data": {
            "source": {"type": "builtin", "name": "digits"},
            "task": "classification",
            "label": "target",
        },
        "model": {"arch": "mlp"},
    } | sections


def problems(raw) -> list[str]:
    with pytest.raises(SpecError) as e:
        validate_spec(raw)
    return e.value.lines()


def test_bad_compress_sections_fail_validation_one_line_each():
    assert validate_spec(digits(compress={})).compress.techniques == ["dynamic_int8", "onnx", "onnx_int8"]
    lines = problems(
        apply_overrides(digits(), ["compress.techniques=[onnx, onnx]", "compress.select.metric=rsme"])
    )
    assert lines == [
        "compress.techniques: each technique once, got ['onnx', 'onnx']",
        "compress.select.metric: a scalar classification test metric, one of " + lines[1].split("one of ")[1],
    ]
    assert "accuracy" in lines[1] and "got 'rsme'" in lines[1]
    (line,) = problems(apply_overrides(digits(), ["compress.techniques=[int4]"]))
    assert line.startswith("compress.techniques[0]: ") and "'dynamic_int8'" in line
    vae = apply_overrides(digits(), ["model.arch=vae", "compress={}"])
    assert "compress: model.arch 'vae' scores its own objective, not labels; remove compress" in problems(vae)
    reg = apply_overrides(digits(), ["compress.select.metric=accuracy"])
    reg["data"] = {"source": {"type": "builtin", "name": "diabetes"}, "task": "regression", "label": "target"}
    found = problems(reg)
    assert any(p.startswith("compress.select.metric: ") and "rmse" in p for p in found), found


def test_every_technique_saves_and_loads_through_predictor_from_run(tmp_path, trained):
    model, x, y = trained
    run = make_run(tmp_path, model, "name: t\n")
    spec = validate_spec(
        digits()
        | {
            "compress": {
                "techniques": [
                    "dynamic_int8",
                    "fp16",
                    "bf16",
                    "onnx",
                    "onnx_int8",
                    "prune_l1",
                    "prune_structured",
                ],
                "measure": QUICK.model_dump(),
                "select": {"max_metric_drop": 0.05, "prefer": "size"},
            }
        }
    )
    result = compress(spec, run, pre(), x, y)
    rows = {r["name"]: r for r in result["candidates"]}
    assert list(rows) == [
        "original",
        "dynamic_int8",
        "fp16",
        "bf16",
        "onnx",
        "onnx_int8",
        "prune_l1",
        "prune_structured",
    ]
    saved = json.loads((run.path / "compress" / "candidates.json").read_text())
    assert saved["selected"] == result["selected"] and saved["threads"] == 1
    assert (run.path / "compress" / "candidates" / "onnx" / "model.onnx.data").is_file()
    assert rows["onnx"]["label_agreement"] >= 0.999 and rows["onnx"]["max_abs_diff"] < 1e-4
    assert rows["dynamic_int8"]["size_ratio"] > 2.0  # int8 weights of a Linear-only model
    assert rows["fp16"]["size_ratio"] > 1.5
    assert rows["prune_l1"]["sparsity"] >= 0.49 and rows["prune_l1"]["params"] == rows["original"]["params"]
    assert rows["original"]["params"] / rows["prune_structured"]["params"] >= 1.8  # half the neurons
    assert rows["prune_structured"]["size_ratio"] >= 1.8
    for name, row in rows.items():
        assert row["gate"] == "pass" or row["passed"] is False, name
        # each saved candidate, loaded as serving loads it, reproduces its measured metric
        d = run.path / "compress" / "candidates" / name
        model_dir = run.path / "model"
        import shutil

        if model_dir.exists():
            shutil.rmtree(model_dir)
        shutil.copytree(d, model_dir)
        files = {"onnx": {"onnx": "model.onnx"}}.get(
            row["format"],
            {
                "config": "model.json",
                "weights": "model.int8.pt" if row["format"] == "torch-int8" else "model.safetensors",
            },
        )
        write_selected(model_dir, row["format"], files, name, recipe=row["recipe"])
        served = Predictor.from_run(run.path)
        assert served.model["format"] == row["format"]
        post = served.postprocess(served.forward(x))
        assert np.mean(post["label_id"] == y) == pytest.approx(row["metrics"]["accuracy"]), name
    # the stage's own choice is what from_run serves
    compress(spec, run, pre(), x, y)
    chosen = json.loads((run.path / "model" / "selected.json").read_text())
    assert chosen["source"] == f"compress/candidates/{result['selected']}"
    assert (run.path / "compress" / "section.html").read_text().count("<tr>") == 9


def test_a_structurally_pruned_cnn_is_smaller_and_rebuilt_from_its_recipe(tmp_path):
    from raydl.backends import load_backend
    from raydl.compress import prune

    config = {
        "arch": "cnn",
        "params": {"channels": [8, 16], "hidden": 32},
        "input_shape": [1, 8, 8],
        "num_outputs": 10,
    }
    model = build_model("cnn", (1, 8, 8), 10, config["params"], None).eval()
    x = np.random.default_rng(0).normal(size=(5, 1, 8, 8)).astype(np.float32)
    cand = prune.structured(model, config, "classification", 0.5, x)
    before = sum(p.numel() for p in model.parameters())
    assert before / cand.params >= 1.8
    files = cand.save(tmp_path)
    write_selected(tmp_path, "torch", files, "t", recipe=cand.recipe)
    served, _ = load_backend(tmp_path, "classification")
    np.testing.assert_allclose(served(x)["logits"], cand.backend(x)["logits"], atol=1e-6)
    assert sum(p.numel() for p in served.model.parameters()) == cand.params


def test_no_pickled_module_is_loaded(tmp_path, trained):
    model, x, _ = trained
    run = make_run(tmp_path, model, "name: t\n")
    int8 = apply_recipe(
        build_model("mlp", (FEATURES,), 3, CONFIG["params"], None), {"quantize": "dynamic_int8"}
    )
    torch.save(int8, tmp_path / "whole.pt")  # a whole module: refused, never unpickled
    with pytest.raises(RaydlError, match="whole pickled torch modules are not loaded"):
        Predictor.from_run(run.path, model=tmp_path / "whole.pt")
    model_dir = run.path / "model"
    torch_saver(int8, CONFIG, "torch-int8")(model_dir)
    with pytest.raises(RaydlError, match="names its recipe"):
        write_selected(model_dir, "torch-int8", {"config": "model.json", "weights": "model.int8.pt"}, "x")
    torch.save(int8, model_dir / "model.int8.pt")  # a pickled module where a state dict belongs
    (model_dir / "selected.json").write_text(
        json.dumps(
            {
                "format": "torch-int8",
                "files": {"config": "model.json", "weights": "model.int8.pt"},
                "recipe": {"quantize": "dynamic_int8"},
            }
        )
    )
    with pytest.raises(RaydlError, match="model.int8.pt: not a state dict of tensors"):
        Predictor.from_run(run.path)


DIGITS_CNN = {
    "arch": "cnn",
    "params": {"channels": [8, 16], "hidden": 32},
    "input_shape": [1, 8, 8],
    "num_outputs": 10,
}


@pytest.fixture
def one_thread():
    """Tiny models: more torch threads only contend on a shared machine."""
    from raydl.compress.measure import pinned_threads

    with pinned_threads(1):
        yield


@pytest.fixture(scope="module")
def digits_cnn():
    """A small CNN fitted (a second or two) to sklearn's digits: (model, train x, test x, test y)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images[:, None] / 16.0).astype(np.float32)  # (N, 1, 8, 8) in [0, 1]
    y = d.target.astype(np.int64)
    torch.manual_seed(0)
    model = build_model("cnn", (1, 8, 8), 10, DIGITS_CNN["params"], None)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    xt, yt = torch.from_numpy(x[:1200]), torch.from_numpy(y[:1200])
    for step in range(60):
        i = (step * 200) % 1200
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt[i : i + 200]), yt[i : i + 200]).backward()
        opt.step()
    torch.set_num_threads(threads)
    return model.eval(), x[:1200], x[1200:], y[1200:]


def test_static_int8_of_a_cnn_agrees_with_fp32_and_loads_back_without_pickles(
    tmp_path, digits_cnn, one_thread
):
    from ray import cloudpickle  # what ray.put uses (no cluster is started)

    from raydl.backends import load_backend
    from raydl.compress import quantize

    model, train_x, x, y = digits_cnn
    cand = quantize.static_int8(model, DIGITS_CNN, "classification", train_x[:256])
    assert cand.fmt == "torch-int8" and cand.notes == {"calibration_rows": 256}
    fp32 = TorchBackend(model, "classification")(x)["logits"].argmax(1)
    int8 = cand.backend(x)["logits"].argmax(1)
    assert np.mean(fp32 == y) > 0.9  # the fixture learned something to agree on
    assert np.mean(int8 == fp32) >= 0.98
    # saved as model.json + a state dict of tensors; rebuilt from the recipe (prepare/convert
    # on a fresh fp32 architecture), then the int8 weights and scales load: the same outputs
    files = cand.save(tmp_path)
    assert files == {"config": "model.json", "weights": "model.int8.pt"}
    torch.load(tmp_path / files["weights"], weights_only=True)  # no pickled module in it
    write_selected(tmp_path, "torch-int8", files, "t", recipe=cand.recipe)
    served, _ = load_backend(tmp_path, "classification")
    np.testing.assert_array_equal(served(x)["logits"], cand.backend(x)["logits"])
    # batch inference ships the backend to Ray actors (cloudpickle): rebuilt there, the same
    shipped = cloudpickle.loads(cloudpickle.dumps(served))
    np.testing.assert_array_equal(shipped(x)["logits"], cand.backend(x)["logits"])


def test_pgd_is_at_least_as_strong_as_fgsm_and_epsilon_zero_is_clean(digits_cnn, one_thread):
    from raydl.compress import robust
    from raydl.spec.compress import RobustnessSpec

    model, _, x, y = digits_cnn
    x, y = x[:200], y[:200]
    cand = Candidate("original", "torch", TorchBackend(model, "classification"), 1, lambda d: {})
    clean = robust.accuracy(cand, x, y)
    spec = RobustnessSpec(epsilon=0.1, pgd_steps=5, rows=200)
    row = robust.robustness_row(cand, x, y, spec, {})
    assert row["attack"] == "white-box"
    assert row["pgd_accuracy"] <= row["fgsm_accuracy"] < clean
    zero = robust.robustness_row(cand, x, y, RobustnessSpec(epsilon=0.0), {})
    assert zero["fgsm_accuracy"] == zero["pgd_accuracy"] == clean
    # an int8 candidate has no gradient: it is scored on the rows crafted against fp32
    int8 = Candidate("i", "torch-int8", TorchBackend(model, "classification"), 1, lambda d: {})
    transfer = robust.attacks(model, x, y, spec)
    assert robust.robustness_row(int8, x, y, spec, transfer) == row | {"attack": "transfer"}


def test_static_int8_and_robustness_are_refused_where_they_do_not_apply():
    lines = problems(apply_overrides(digits(), ["compress.techniques=[static_int8]"]))
    assert lines == [
        "compress.techniques: static_int8 is for CNNs (cnn, resnet, resnet18); model.arch 'mlp' is not "
        "one of them; use dynamic_int8"
    ]
    assert validate_spec(apply_overrides(digits(), ["model.arch=cnn", "compress.techniques=[static_int8]"]))
    reg = apply_overrides(digits(), ["compress.robustness={}"])
    reg["data"] = {"source": {"type": "builtin", "name": "diabetes"}, "task": "regression", "label": "target"}
    assert (
        "compress.robustness: FGSM/PGD accuracy is measured for classification; data.task is regression; "
        "set it to null"
    ) in problems(reg)
    text = {
        "name": "t",
        "data": {
            "source": {"type": "builtin", "name": "bbc_news"},
            "label": "label",
            "text": {"column": "text"},
        },
        "model": {"arch": "embedding_bag"},
        "compress": {"techniques": ["static_int8", "dynamic_int8"], "robustness": {"epsilon": 0.05}},
    }
    assert problems(text) == [
        "compress.techniques: static_int8 is for CNNs (cnn, resnet, resnet18); model.arch 'embedding_bag' "
        "is not one of them; use dynamic_int8",
        "compress.robustness: FGSM/PGD perturb tensor/image input; this job's input is text token ids "
        "(data.text); set it to null",
    ]
