"""Sources on a real local Ray: image folders (read as bytes, decoded and resized by the
preprocessor — the Predictor's decode), datasets saved with save_to_disk, pyarrow
filesystem URIs, column selection and renaming."""

import base64
import json
import subprocess
import sys
import textwrap

import datasets
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sklearn.datasets
from PIL import Image
from typer.testing import CliRunner

import raydl
from raydl.cli import app
from raydl.data.prepare import prepare_data
from raydl.errors import DataError, SpecError
from raydl.spec import validate_spec
from tests.predictions import check_exact

pytestmark = pytest.mark.integration


def spec_for(source: dict, model: str = "mlp", local_paths: bool = True, **data) -> object:
    data.setdefault("split", {"method": "stratified", "val": 0.2, "test": 0.2})
    raw = {"name": "t", "data": {"source": source, **data}, "model": {"arch": model}}
    return validate_spec(raw, local_paths=local_paths)


def digit_folder(root, per_class=60, classes=(0, 1, 2), side=16, fmt="PNG", rgb=False):
    """sklearn's 8x8 digits, upscaled to side x side, one sub-folder per class."""
    d = sklearn.datasets.load_digits()
    for c in classes:
        (root / f"digit{c}").mkdir(parents=True)
        for i, img in enumerate(d.images[d.target == c][:per_class]):
            pil = Image.fromarray((img * 255 / 16).astype(np.uint8)).resize((side, side))
            pil = pil.convert("RGB") if rgb else pil
            pil.save(root / f"digit{c}" / f"{i:03d}.{fmt.lower()}", fmt)
    return root


def test_images_folder_job_runs_end_to_end_past_a_broken_file(image_run):
    result, _ = image_run
    assert result.metrics["classes"] == ["digit0", "digit1", "digit2"]
    assert result.metrics["accuracy"] >= 0.85
    report = json.loads((result.run_dir / "data_report.json").read_text())
    assert report["input_shape"] == [1, 12, 12] and report["rows_read"] == 181
    parse = report["steps"][0]  # the broken file: one line, skipped and counted
    assert parse["changed"]["undecodable_images"] == 1 and parse["rows_out"] == 180
    assert parse["changed"]["examples"] == [
        "digit1/broken.png: cannot decode as an image (cannot identify image file)"
    ]


def test_png_files_reproduce_the_run_through_the_predictor(image_run):
    result, folder = image_run
    saved = np.load(result.run_dir / "predictions.npz")
    files = [folder / p for p in saved["id"]]  # the test rows, named by their files
    predictor = raydl.Predictor.from_run(result.run_dir)
    check_exact(predictor, [{"image": f.read_bytes()} for f in files], result.run_dir)
    # the same decode from a path or base64 text; the schema says what a request holds
    as_path = predictor.predict({"image": str(files[0])})
    assert as_path == predictor.predict({"image": base64.b64encode(files[0].read_bytes()).decode()})
    assert as_path == predictor.predict({"image": files[0].read_bytes()})
    assert predictor.input_schema["fields"] == [
        {"name": "image", "kind": "image", "shape": [1, 12, 12], "mode": "L", "required": True}
    ]
    code = textwrap.dedent(f"""
        import sys
        sys.modules["ray"] = None  # `import ray` fails from here on
        import raydl
        p = raydl.Predictor.from_run({str(result.run_dir)!r})
        print(p.predict({{"image": {str(files[0])!r}}})["label"])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [as_path["label"]]


def test_raydl_predict_over_an_image_folder(image_run, tmp_path):
    result, folder = image_run
    out = tmp_path / "images.csv"
    args = ["predict", str(result.run_dir), "--input", str(folder), "--output", str(out), "--actors", "1"]
    cli = CliRunner().invoke(app, args)
    assert cli.exit_code == 0, cli.output
    assert "predicted 180 of 181 rows" in cli.output and "failed 1 rows" in cli.output
    got = pd.read_csv(out)
    assert list(got.columns) == ["path", "pred_label", "pred_probability"] + [
        f"pred_p_digit{i}" for i in range(3)
    ]
    assert (got["pred_label"] == got["path"].str.split("/").str[0]).mean() >= 0.85
    broken = pq.read_table(tmp_path / "images.csv.errors.parquet").to_pandas()
    # in input order: digit0's 60 files, then digit1's 000-059.png, then broken.png
    assert broken[["row", "path"]].to_dict("records") == [{"row": 120, "path": "digit1/broken.png"}]
    assert broken["error"][0].startswith("field 'image': cannot decode as an image")


def test_a_broken_image_is_refused_in_one_line_when_the_spec_says(image_run):
    spec = spec_for(
        {"type": "images", "path": str(image_run[1])},
        image={"shape": [1, 12, 12]},
        clean={"unparseable": "reject"},
    )
    with pytest.raises(DataError) as e:
        prepare_data(spec)
    assert str(e.value) == (
        "data: 1 image(s) cannot be decoded; the first: digit1/broken.png: cannot decode as an image "
        "(cannot identify image file); fix the data or set data.clean.unparseable: report to drop them"
    )


def test_rgb_jpeg_folder_and_a_missing_folder(ray_cluster, tmp_path):
    folder = digit_folder(tmp_path / "jpg", per_class=10, classes=(3, 7), side=10, fmt="JPEG", rgb=True)
    prepared = prepare_data(spec_for({"type": "images", "path": str(folder)}, image={"shape": [3, 8, 8]}))
    assert prepared.preprocessor.input_shape == [3, 8, 8] and prepared.preprocessor.classes == [
        "digit3",
        "digit7",
    ]
    assert sum(prepared.report["split"]["rows"].values()) == 20
    batch = next(iter(prepared.datasets["train"].iter_batches(batch_size=4, batch_format="numpy")))
    assert batch["x"].shape == (4, 3, 8, 8) and batch["x"].dtype == np.float32

    missing = {"type": "images", "path": str(tmp_path / "nope")}
    with pytest.raises(SpecError, match="does not exist"):  # found when the spec is checked
        spec_for(missing, image={"shape": [1, 8, 8]})
    with pytest.raises(DataError, match="is not a folder of class sub-folders"):  # or when read
        prepare_data(spec_for(missing, image={"shape": [1, 8, 8]}, local_paths=False))


def wine_dict():
    frame = sklearn.datasets.load_wine(as_frame=True).frame
    half = len(frame) // 2
    return datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_pandas(frame.iloc[:half], preserve_index=False),
            "test": datasets.Dataset.from_pandas(frame.iloc[half:], preserve_index=False),
        }
    )


def test_hf_disk_dataset_dict_with_columns_and_rename(ray_cluster, tmp_path):
    wine_dict().save_to_disk(tmp_path / "wine")
    source = {
        "type": "hf_disk",
        "path": str(tmp_path / "wine"),
        "columns": ["alcohol", "malic_acid", "color_intensity", "target"],
        "rename": {"target": "cultivar"},
    }
    prepared = prepare_data(spec_for(source, label="cultivar"))
    assert prepared.report["rows"] == 178  # both splits: raydl makes its own
    assert prepared.preprocessor.feature_columns == ["alcohol", "malic_acid", "color_intensity"]
    assert prepared.preprocessor.classes == [0, 1, 2]

    one = prepare_data(spec_for({**source, "split": "train"}, label="cultivar"))
    assert one.report["rows"] == 89
    with pytest.raises(DataError, match="data.source.split: no split 'validation'; splits: train, test"):
        prepare_data(spec_for({**source, "split": "validation"}, label="cultivar"))
    with pytest.raises(DataError, match="data.source.rename: no column 'targt' in the data"):
        prepare_data(spec_for({**source, "rename": {"targt": "cultivar"}}, label="cultivar"))
    with pytest.raises(DataError, match="no dataset saved with save_to_disk"):
        prepare_data(spec_for({"type": "hf_disk", "path": str(tmp_path)}, label="target"))


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_files_by_pyarrow_filesystem_uri_with_columns_and_rename(ray_cluster, tmp_path, kind):
    frame = sklearn.datasets.load_iris(as_frame=True).frame
    path = tmp_path / f"iris.{kind}"
    {"csv": lambda: frame.to_csv(path, index=False), "parquet": lambda: frame.to_parquet(path)}.get(
        kind, lambda: frame.to_json(path, orient="records", lines=True)
    )()
    source = {
        "type": kind,
        "path": path.as_uri(),  # file:///...: read through pyarrow's filesystem layer
        "columns": ["sepal length (cm)", "petal width (cm)", "target"],
        "rename": {"sepal length (cm)": "sepal_length", "target": "species"},
    }
    prepared = prepare_data(spec_for(source, label="species"))
    assert prepared.report["rows"] == 150
    assert sorted(prepared.preprocessor.feature_columns) == ["petal width (cm)", "sepal_length"]
