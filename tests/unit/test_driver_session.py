"""A one-worker run in the driver keeps its checkpoints as Ray Train does: the best by
metric plus the latest, named in an index a resumed run reads back."""

import json

from raydl.train.session import DriverSession


def _session(folder, reports, keep=1, mode="max"):
    return DriverSession({}, folder, keep=keep, metric="val_accuracy", mode=mode, on_report=reports.append)


def _checkpoint(tmp_path, epoch):
    d = tmp_path / f"tmp{epoch}"
    d.mkdir()
    (d / "model.json").write_text(json.dumps({"epoch": epoch}))
    return d


def test_keeps_the_best_and_the_latest_and_reports_every_epoch(tmp_path):
    folder, reports = tmp_path / "train", []
    folder.mkdir()
    s = _session(folder, reports)
    for epoch, acc in [(1, 0.5), (2, 0.9), (3, 0.7), (4, 0.8)]:
        s.report({"epoch": epoch, "val_accuracy": acc}, _checkpoint(tmp_path, epoch))
    s.report({"epoch": 5, "val_accuracy": 0.95})  # an epoch without a checkpoint
    assert [r["epoch"] for r in reports] == [1, 2, 3, 4, 5]
    assert sorted(p.name for p in folder.glob("checkpoint_*")) == ["checkpoint_000002", "checkpoint_000004"]
    best, metrics = s.best()
    assert best.name == "checkpoint_000002" and metrics["val_accuracy"] == 0.9
    assert s.latest().name == "checkpoint_000004"
    with s.checkpoint().as_directory() as d, open(f"{d}/model.json") as f:
        assert json.load(f)["epoch"] == 4

    # a resumed run reads the index: it continues from the latest, and still knows the best
    again = _session(folder, [])
    assert again.latest().name == "checkpoint_000004" and again.best()[0].name == "checkpoint_000002"


def test_min_mode_and_a_metric_no_epoch_reports(tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    s = DriverSession({}, folder, keep=1, metric="val_loss", mode="min", on_report=lambda r: None)
    for epoch, loss in [(1, 0.3), (2, 0.1), (3, float("nan"))]:
        s.report({"epoch": epoch, "val_loss": loss}, _checkpoint(tmp_path, epoch))
    assert s.best()[0].name == "checkpoint_000002"  # a NaN never wins
    assert s.latest().name == "checkpoint_000003"
    other = tmp_path / "other"
    other.mkdir()
    s = DriverSession({}, other, keep=2, metric="val_bleu", mode="max", on_report=lambda r: None)
    s.report({"epoch": 1, "val_loss": 0.3}, _checkpoint(tmp_path, 11))
    assert s.best()[0].name == "checkpoint_000001"  # nothing reports the metric: the latest
