"""Sources on a real local Ray: image folders (decoded and resized by Ray Data), datasets
saved with save_to_disk, pyarrow filesystem URIs, column selection and renaming."""

import datasets
import numpy as np
import pytest
import sklearn.datasets
from PIL import Image

import raydl
from raydl.data.prepare import prepare_data
from raydl.errors import DataError, SpecError
from raydl.spec import validate_spec

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


def test_images_folder_job_runs_end_to_end(ray_cluster, tmp_path):
    # Files are 16x16; the spec asks for 12x12: Ray Data resizes while decoding.
    folder = digit_folder(tmp_path / "imgs")
    spec = spec_for(
        {"type": "images", "path": str(folder)},
        model="cnn",
        image={"shape": [1, 12, 12]},
    )
    spec.train.epochs = 8
    spec.train.batch_size = 32
    spec.train.optimizer.lr = 3e-3
    result = raydl.run(spec, runs_root=tmp_path / "runs")
    assert result.metrics["classes"] == ["digit0", "digit1", "digit2"]
    assert result.metrics["accuracy"] >= 0.85
    report = (result.run_dir / "data_report.json").read_text()
    assert '"input_shape": [\n    1,\n    12,\n    12\n  ]' in report


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
