"""Raw rows through the fitted preprocessor and the Predictor, without Ray: gaps in every
column kind, fills and clip bounds, renamed columns, images as bytes / base64 / paths,
bad rows named (row, field, value), the model/ contract."""

import base64
import copy
import io
import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
from PIL import Image

import raydl
from raydl.backends import TorchBackend, apply_recipe, write_selected
from raydl.data import rows
from raydl.data.preprocess import Preprocessor
from raydl.errors import RaydlError, RequestError
from raydl.models import build_model
from raydl.predict import Predictor
from raydl.train.checkpoint import save_weights


def table() -> Preprocessor:
    """a, b numbers (a filled, b refused, a clipped), color one-hot (filled), city ids;
    the source calls column b 'B' (data.source.rename: {B: b})."""
    return Preprocessor(
        task="classification",
        label="y",
        feature_columns=["a", "b", "color", "city"],
        input_shape=[2 + 2 + 1],
        center=[1.0, 0.0],
        scale=[2.0, 1.0],
        classes=["no", "yes"],
        categorical_columns=["color", "city"],
        categories={"color": ["blue", "red"], "city": ["x", "y", "z"]},
        onehot=["color"],
        rename={"B": "b"},
        source_columns=["a", "B", "color", "city", "y", "id"],
        row_id_column="id",
        fill_values={"a": 3.0, "color": "red", "city": "x"},
        clip_bounds={"a": [-1.0, 5.0]},
        data_info={"id_cardinalities": [4]},
    )


def test_a_gap_is_a_gap_in_every_column_kind():
    values = np.array([None, np.nan, "", "  ", "0", "x", 0], dtype=object)
    assert rows.missing(values).tolist() == [True, True, True, True, False, False, False]
    x, gaps, bad = rows.numbers(np.array(["1.5", "", "abc", None, "inf", [1]], dtype=object))
    assert gaps.tolist() == [False, True, False, True, False, False]
    assert bad.tolist() == [False, False, True, False, True, True] and x[0] == 1.5
    cats, gaps, bad = rows.categories(np.array(["red", "", 3, {"k": 1}], dtype=object))
    assert cats[0] == "red" and cats[2] == "3" and gaps.tolist() == [False, True, False, False]
    assert bad.tolist() == [False, False, False, True]


def test_fills_clips_renames_and_refuses_as_training_did():
    pre = table()
    batch, n = rows.to_columns(
        [
            {"a": 10, "B": 1, "color": "blue", "city": "y"},  # a clipped to 5, source name B
            {"a": "", "b": 0, "color": None, "city": "zz"},  # a, color filled; unknown city → id 0
            {"a": 1, "color": "red", "city": "x"},  # b missing: training filled no gaps there
        ]
    )
    x, good, problems = pre.transform(batch)
    assert good.tolist() == [0, 1] and n == 3
    np.testing.assert_allclose(x, [[2.0, 1.0, 1, 0, 2], [1.0, 0.0, 0, 1, 0]])
    (p,) = problems
    assert (p.row, p.field, p.value) == (2, "b", None) and "training fills no gaps here" in p.reason

    # the same rows as a DataFrame (NaN gaps) and as an Arrow table (null gaps) read alike
    frame = pd.DataFrame({"a": [10.0, np.nan], "B": [1.0, 0.0], "color": ["blue", None], "city": ["y", "zz"]})
    np.testing.assert_allclose(pre.transform(rows.to_columns(frame)[0])[0], x)
    np.testing.assert_allclose(pre.transform(rows.to_columns(pa.Table.from_pandas(frame))[0])[0], x)


def png(value: int, size=(10, 10), mode="L") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, value if mode == "L" else (value, 0, 0)).save(buf, "PNG")
    return buf.getvalue()


def images() -> Preprocessor:
    return Preprocessor(
        task="classification",
        label="label",
        feature_columns=None,
        input_shape=[1, 4, 4],
        center=[100.0],
        scale=[50.0],
        classes=["a", "b"],
        image_column="image",
        image_mode="L",
        source_columns=["image", "path", "label"],
    )


def test_images_decode_from_bytes_base64_a_data_url_or_a_path(tmp_path):
    pre = images()
    (tmp_path / "one.png").write_bytes(png(200))
    b64 = base64.b64encode(png(200)).decode()
    given = [png(200), b64, f"data:image/png;base64,{b64}", str(tmp_path / "one.png"), png(200, mode="RGB")]
    x, good, problems = pre.transform({"image": np.array(given, dtype=object)})
    assert not problems and x.shape == (5, 1, 4, 4)  # resized from 10x10, RGB converted to L
    np.testing.assert_allclose(x[:4], 2.0)  # (200 - 100) / 50
    assert x[4].mean() < x[0].mean()  # red converted to gray is darker than 200 gray

    bad = [b"\x89PNG\r\n\x1a\n-truncated", "not-a-file-nor-base64!", None, 7]
    _, good, problems = pre.transform({"image": np.array(bad, dtype=object)})
    assert len(good) == 0
    reasons = {p.row: p.reason for p in problems}
    assert reasons[0].startswith("cannot decode as an image")
    assert reasons[1] == "neither a readable image file nor base64 image data"
    assert reasons[2] == "no image given" and reasons[3].startswith("expected image bytes")


def mlp_predictor(pre: Preprocessor) -> Predictor:
    torch.manual_seed(0)
    model = build_model("mlp", tuple(pre.input_shape), 2, {"hidden": [8]}, pre.data_info)
    return Predictor(pre, TorchBackend(model, pre.task))


def _same(a: dict, b: dict) -> bool:
    """The same answer: labels and ranking exact, probabilities to float32 rounding."""
    return (
        a["label"] == b["label"]
        and [t["label"] for t in a["top_k"]] == [t["label"] for t in b["top_k"]]
        and a["probabilities"] == pytest.approx(b["probabilities"], rel=1e-6)
        and a["probability"] == pytest.approx(b["probability"], rel=1e-6)
    )


def test_predict_answers_one_row_many_rows_and_collects_bad_ones():
    p = mlp_predictor(table())
    one = p.predict({"a": 1, "b": 0.5, "color": "red", "city": "x"})
    assert set(one) == {"label", "probability", "probabilities", "top_k"} and one["label"] in ("no", "yes")
    assert sum(one["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert [t["label"] for t in one["top_k"]][0] == one["label"]
    good = {"a": 1, "b": 0.5, "color": "red", "city": "x"}
    rows_ = [good, {**good, "b": "abc"}, {**good, "colour": "red"}, {**good, "city": ["x"]}, good]

    with pytest.raises(RequestError) as e:
        p.predict(rows_)
    assert (e.value.row, e.value.field, e.value.value) == (1, "b", "abc")
    assert isinstance(e.value, RaydlError) and len(e.value.lines()) == 3
    assert "row 2, field 'colour': unknown field; did you mean 'color'?" in e.value.lines()[1]

    answers, errors = p.predict(rows_, errors="collect")
    assert [a is None for a in answers] == [False, True, True, True, False]
    # one vectorised pass gives each row its own answer (to float32 rounding: a batch of
    # rows may take another matmul kernel than one row, and round its last bit otherwise)
    assert _same(answers[0], one) and _same(answers[4], one)
    assert [(x.row, x.field) for x in errors] == [(1, "b"), (2, "colour"), (3, "city")]
    assert _same(p.predict(rows_[2:3], unknown="ignore")[0], one)

    for nothing in ([], pd.DataFrame()):
        with pytest.raises(RequestError, match="no rows given"):
            p.predict(nothing)
    with pytest.raises(RequestError, match="a list of rows holds dicts"):
        p.predict([good, 3])


def run_dir(tmp_path, pre: Preprocessor, model) -> str:
    """A run directory as training leaves it: spec, preprocessor, best checkpoint."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "spec.yaml").write_text("name: t\n")
    pre.save(run / "preprocessor")
    config = {"arch": "mlp", "params": {"hidden": [8]}, "input_shape": pre.input_shape, "num_outputs": 2}
    save_weights(run / "checkpoints" / "best", model.state_dict(), config | {"data_info": pre.data_info})
    return str(run)


def test_the_selected_model_contract_swaps_the_backend_behind_the_same_path(tmp_path):
    pre = table()
    model = mlp_predictor(pre).backend.model
    run = run_dir(tmp_path, pre, model)
    frame = pd.DataFrame(
        {"a": [0.0, 4.0, 9.0], "b": [1.0, -1.0, 0.0], "color": ["red", "blue", ""], "city": "x"}
    )

    best = Predictor.from_run(run)  # no model/ yet: the best checkpoint
    assert best.model["format"] == "torch" and best.model["path"].endswith("checkpoints/best")
    assert best.input_schema["fields"][1] == {
        "name": "B",
        "spec_name": "b",
        "kind": "number",
        "required": True,
    }

    # the compression stage writes model/ (here: dynamic int8 of the same MLP, as a state
    # dict and the recipe that rebuilds its modules: no pickled module)
    int8 = apply_recipe(copy.deepcopy(model), {"quantize": "dynamic_int8"})
    model_dir = tmp_path / "run" / "model"
    model_dir.mkdir()
    torch.save(int8.state_dict(), model_dir / "model.int8.pt")
    shutil.copyfile(tmp_path / "run" / "checkpoints" / "best" / "model.json", model_dir / "model.json")
    files = {"config": "model.json", "weights": "model.int8.pt"}
    write_selected(model_dir, "torch-int8", files, "checkpoints/best", recipe={"quantize": "dynamic_int8"})
    selected = Predictor.from_run(run)
    assert selected.model["format"] == "torch-int8"
    a, b = best.predict(frame, unknown="ignore"), selected.predict(frame, unknown="ignore")
    assert [r["label"] for r in a] == [r["label"] for r in b]
    assert np.allclose([r["probability"] for r in a], [r["probability"] for r in b], atol=0.02)
    assert Predictor.from_run(run, model="best").model["format"] == "torch"

    (tmp_path / "run" / "model" / "selected.json").write_text(json.dumps({"format": "tflite", "files": {}}))
    with pytest.raises(RaydlError, match="format must be one of torch, torch-int8, onnx, got 'tflite'"):
        Predictor.from_run(run)
    with pytest.raises(RaydlError, match="not a raydl run directory"):
        raydl.Predictor.from_run(tmp_path)


def test_an_onnx_model_serves_behind_the_same_pre_and_post_processing(tmp_path):
    import pickle

    pre = table()
    model = mlp_predictor(pre).backend.model
    run = run_dir(tmp_path, pre, model)
    (tmp_path / "run" / "model").mkdir()
    example = torch.zeros(2, *pre.input_shape)
    onnx = tmp_path / "run" / "model" / "model.onnx"
    torch.onnx.export(
        model, (example,), str(onnx), input_names=["x"], dynamic_shapes=({0: "batch"},), external_data=False
    )
    write_selected(tmp_path / "run" / "model", "onnx", {"onnx": "model.onnx"}, "checkpoints/best")
    frame = pd.DataFrame(
        {"a": [0.0, 4.0, 9.0], "B": [1.0, -1.0, 0.0], "color": ["red", "blue", ""], "city": "x"}
    )
    served = Predictor.from_run(run)
    assert served.model["format"] == "onnx"
    best = Predictor.from_run(run, model="best").predict(frame)
    answers = served.predict(frame)
    assert [a["label"] for a in answers] == [a["label"] for a in best]
    np.testing.assert_allclose(
        [a["probability"] for a in answers], [a["probability"] for a in best], atol=1e-5
    )
    shipped = pickle.loads(pickle.dumps(served))  # batch inference ships it to its actors
    assert shipped.predict(frame) == answers
