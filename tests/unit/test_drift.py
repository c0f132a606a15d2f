"""Drift against the training statistics, Ray-free: the reference is built exactly as the
data stage saves it (a quantile sketch's histogram, ``ColumnStats.describe``); inputs
shifted by 2σ raise the flag, unshifted inputs raise it in at most 5 % of windows."""

import numpy as np
from datasketches import kll_doubles_sketch

from raydl.data.stats import SKETCH_K, ColumnStats
from raydl.serve.drift import DriftMonitor, Reference, psi

MEANS, STDS = {"a": 0.0, "b": 5.0, "c": -3.0}, {"a": 1.0, "b": 2.0, "c": 0.5}
CLASSES = {"x": 600, "y": 300, "z": 100}


def reference(rng) -> Reference:
    features = {}
    for name in MEANS:
        v = rng.normal(MEANS[name], STDS[name], 5000)
        sk = kll_doubles_sketch(SKETCH_K)
        sk.update(v)
        features[name] = ColumnStats(len(v), float(v.mean()), float(v.std()), sk).describe()
    return Reference.from_report({"features": features, "class_counts": {"train": CLASSES}}, list(CLASSES))


def window(rng, n, shift=0.0, classes=(0.6, 0.3, 0.1)):
    numeric = {k: rng.normal(MEANS[k] + shift * STDS[k], STDS[k], n) for k in MEANS}
    labels = rng.choice(list(CLASSES), n, p=list(classes))
    return numeric, labels


def test_unshifted_inputs_rarely_raise_the_flag_and_2_sigma_always_does():
    rng = np.random.default_rng(0)
    ref = reference(rng)
    flagged, shifted = 0, 0
    windows = 200
    for _ in range(windows):
        monitor = DriftMonitor(ref, window=500)
        monitor.update(*window(rng, 500))
        flagged += monitor.report()["drift"]
        monitor = DriftMonitor(ref, window=500)
        monitor.update(*window(rng, 500, shift=2.0))
        shifted += monitor.report()["drift"]
    assert flagged / windows <= 0.05, flagged
    assert shifted == windows


def test_one_shifted_feature_is_named_and_the_window_rolls():
    rng = np.random.default_rng(1)
    monitor = DriftMonitor(reference(rng), window=400)
    numeric, labels = window(rng, 400)
    numeric["b"] = numeric["b"] + 2 * STDS["b"]
    monitor.update(numeric, labels)
    report = monitor.report()
    assert report["drift"] and report["ready"]
    assert [k for k, f in report["features"].items() if f["drift"]] == ["b"]
    assert report["features"]["b"]["p_value"] < 1e-6 and report["features"]["b"]["psi"] > 1.0
    # fresh unshifted traffic pushes the shifted rows out of the window
    monitor.update(*window(rng, 400))
    assert not monitor.report()["features"]["b"]["drift"]


def test_a_shift_of_the_predicted_classes_alone_raises_the_flag():
    rng = np.random.default_rng(2)
    monitor = DriftMonitor(reference(rng), window=500)
    monitor.update(*window(rng, 500, classes=(0.1, 0.3, 0.6)))
    report = monitor.report()
    assert report["predictions"]["drift"] and report["drift"]
    assert not any(f["drift"] for f in report["features"].values())


def test_too_few_rows_are_not_ready_and_do_not_drift():
    rng = np.random.default_rng(3)
    monitor = DriftMonitor(reference(rng), window=500)
    monitor.update(*window(rng, 50, shift=3.0))
    report = monitor.report()
    assert not report["ready"] and not report["drift"]


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift():
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0
    assert psi(np.array([0.5, 0.5]), np.array([0.6, 0.4])) < psi(np.array([0.5, 0.5]), np.array([0.9, 0.1]))
