"""Drift against the training statistics, Ray-free: the reference is built exactly as the
data stage saves it (a quantile sketch's histogram, ``ColumnStats.describe``; category
counts, ``ColumnStats.describe_counts``); inputs shifted by 2σ — or categories whose
shares visibly moved — raise the flag, unshifted inputs raise it in at most 5 % of windows."""

from collections import Counter

import numpy as np
import pytest
from datasketches import kll_doubles_sketch

from raydl.data.stats import SKETCH_K, ColumnStats
from raydl.serve.drift import CategoryReference, DriftMonitor, Reference, chi2, psi

MEANS, STDS = {"a": 0.0, "b": 5.0, "c": -3.0}, {"a": 1.0, "b": 2.0, "c": 0.5}
CLASSES = {"x": 600, "y": 300, "z": 100}
# train shares per categorical feature: a few common values, and a wide one with rare values
# (expected under 5 rows in a window: pooled by χ², floored by PSI)
CATEGORIES = {
    "color": {"red": 0.5, "green": 0.3, "blue": 0.15, "violet": 0.05},
    "city": {f"city{i}": s for i, s in enumerate([0.3, 0.2, 0.15, 0.1, 0.1, 0.05] + [0.01] * 10)},
}
TRAIN_ROWS = 5000


def category_counts(rng, column: str, n: int = TRAIN_ROWS) -> dict:
    """A train column drawn from its shares, described as the data stage saves it."""
    shares = CATEGORIES[column]
    drawn = Counter(rng.choice(list(shares), n, p=list(shares.values())).tolist())
    return ColumnStats(n, float("nan"), float("nan"), None, drawn).describe_counts(shares)


def reference(rng) -> Reference:
    features = {}
    for name in MEANS:
        v = rng.normal(MEANS[name], STDS[name], TRAIN_ROWS)
        sk = kll_doubles_sketch(SKETCH_K)
        sk.update(v)
        features[name] = ColumnStats(len(v), float(v.mean()), float(v.std()), sk).describe()
    report = {
        "features": features,
        "category_counts": {c: category_counts(rng, c) for c in CATEGORIES},
        "class_counts": {"train": CLASSES},
    }
    return Reference.from_report(report, list(CLASSES))


def window(rng, n, shift=0.0, classes=(0.6, 0.3, 0.1), categories=None):
    """``n`` live rows: numeric features shifted by ``shift`` σ, predicted classes and
    categories drawn from the given shares (the train shares unless ``categories`` names others)."""
    numeric = {k: rng.normal(MEANS[k] + shift * STDS[k], STDS[k], n) for k in MEANS}
    labels = rng.choice(list(CLASSES), n, p=list(classes))
    shares = CATEGORIES | (categories or {})
    categorical = {c: rng.choice(list(s), n, p=list(s.values())) for c, s in shares.items()}
    return numeric, labels, categorical


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
    numeric, labels, categorical = window(rng, 400)
    numeric["b"] = numeric["b"] + 2 * STDS["b"]
    monitor.update(numeric, labels, categorical)
    report = monitor.report()
    assert report["drift"] and report["ready"]
    assert [k for k, f in report["features"].items() if f["drift"]] == ["b"]
    assert report["features"]["b"]["kind"] == "number" and report["features"]["color"]["kind"] == "category"
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


# ------------------------------------------------------------------ categorical features
MOVED = {"red": 0.35, "green": 0.3, "blue": 0.3, "violet": 0.05}  # 15 % of rows from red to blue


def test_categories_from_the_train_shares_rarely_flag_and_moved_shares_always_do():
    rng = np.random.default_rng(4)
    ref = reference(rng)
    flagged, moved = Counter(), 0
    windows = 200
    for _ in range(windows):
        monitor = DriftMonitor(ref, window=500)
        monitor.update(*window(rng, 500))
        features = monitor.report()["features"]
        flagged.update(c for c in CATEGORIES if features[c]["drift"])
        monitor = DriftMonitor(ref, window=500)
        monitor.update(*window(rng, 500, categories={"color": MOVED}))
        report = monitor.report()
        moved += report["drift"] and [k for k, f in report["features"].items() if f["drift"]] == ["color"]
    assert all(flagged[c] / windows <= 0.05 for c in CATEGORIES), flagged
    assert moved == windows


def test_a_moved_category_is_named_with_its_psi_and_chi2_in_the_report():
    rng = np.random.default_rng(5)
    monitor = DriftMonitor(reference(rng), window=500)
    monitor.update(*window(rng, 500, categories={"color": MOVED}))
    report = monitor.report()
    color = report["features"]["color"]
    assert color["ready"] and color["drift"] and report["drift"]
    assert color["p_value"] < 1e-6 and color["chi2"] > 0 and 0 < color["psi"] <= report["score"]
    assert color["other"] == 0.0 and not report["features"]["city"]["drift"]


def test_values_train_never_saw_share_one_bucket_with_a_finite_psi():
    rng = np.random.default_rng(6)
    ref = reference(rng)
    numeric, labels, categorical = window(rng, 500)
    categorical["color"] = categorical["color"].astype(object)
    categorical["color"][:100] = [f"new{i % 7}" for i in range(100)]  # 20 %, 7 values never seen
    monitor = DriftMonitor(ref, window=500)
    monitor.update(numeric, labels, categorical)
    color = monitor.report()["features"]["color"]
    assert color["drift"] and color["other"] == 0.2 and np.isfinite(color["psi"]) and color["psi"] > 1.0
    # one new value in a window is no drift: its bin is pooled with the smallest known one
    categorical["color"][:100] = window(rng, 100)[2]["color"]
    categorical["color"][0] = "new0"
    monitor = DriftMonitor(ref, window=500)
    monitor.update(numeric, labels, categorical)
    assert not monitor.report()["features"]["color"]["drift"]


def test_categories_are_read_as_the_preprocessor_reads_them_and_gaps_are_left_out():
    counts = ColumnStats(30, float("nan"), float("nan"), None, Counter({"1": 20, "2": 10})).describe_counts(
        ["1", "2"]
    )
    monitor = DriftMonitor(Reference.from_report({"category_counts": {"k": counts}}), window=40)
    monitor.update({}, [], {"k": [1, 2, None, float("nan"), "  ", [1, 2]] + ["1"] * 19})
    k = monitor.report()["features"]["k"]
    assert k["rows"] == 21 and k["ready"] and k["other"] == 0.0  # the int 1 is the category "1"


def test_the_report_keeps_the_most_frequent_known_values_and_counts_the_rest_as_other():
    counts = Counter({"a": 5, "b": 9, "c": 1, "d": 3, "x": 2})  # "x": not a value the encoder knows
    described = ColumnStats(20, float("nan"), float("nan"), None, counts).describe_counts(
        ["a", "b", "c", "d"], kept=2
    )
    assert described == {"count": 20, "counts": {"b": 9, "a": 5}, "other": 6}
    ref = CategoryReference.from_describe(described)
    assert ref is not None and ref.values == ("b", "a")
    np.testing.assert_allclose(ref.shares, [0.45, 0.25, 0.3])
    np.testing.assert_array_equal(ref.counts(["a", "c", "zz", "b"]), [1, 1, 2])
    assert CategoryReference.from_describe({"count": 0, "counts": {}, "other": 0}) is None


@pytest.mark.parametrize(
    ("expected", "observed", "flat"),
    [
        ([0.5, 0.5], [50, 50], True),
        ([0.5, 0.5], [80, 20], False),
        ([0.999, 0.001], [99, 1], True),  # the small bin is pooled: one bin left, nothing to test
        ([0.5, 0.49, 0.01], [50, 50, 0], True),  # the rare bin joins the smallest other one
    ],
)
def test_chi2_pools_bins_too_small_for_its_approximation(expected, observed, flat):
    statistic, p = chi2(np.array(expected), np.array(observed))
    assert (p > 0.5) == flat and np.isfinite(statistic)
