"""Split routing and preprocessing as pure functions (no Ray)."""

import numpy as np

from raydl.data.preprocess import Preprocessor
from raydl.data.split import SplitRule, row_hashes


def test_row_hash_depends_on_content_not_position():
    x = np.arange(24, dtype=np.float32).reshape(6, 1, 2, 2)
    y = np.array([0, 1, 0, 1, 0, 1])
    h = row_hashes({"x": x, "label": y})
    assert len(set(h.tolist())) == 6
    order = np.array([5, 3, 1, 0, 2, 4])
    np.testing.assert_array_equal(row_hashes({"x": x[order], "label": y[order]}), h[order])
    dup = row_hashes({"x": x[[2, 2]], "label": y[[2, 2]]})
    assert dup[0] == dup[1] == h[2]  # exact duplicates share a hash, so a split
    relabelled = row_hashes({"x": x, "label": 1 - y})
    assert not set(relabelled.tolist()) & set(h.tolist())


def test_split_rule_is_seeded_and_deterministic():
    rng = np.random.default_rng(0)
    h = rng.integers(0, 2**63, size=5000).astype(np.int64)
    y = rng.integers(0, 3, size=5000)
    rule = SplitRule(seed=1, label="y", kind="none", strata=[0], test_cut=[0.2], val_cut=[0.3])
    codes = rule.codes(h, y)
    assert abs((codes == 2).mean() - 0.2) < 0.02 and abs((codes == 1).mean() - 0.1) < 0.02
    np.testing.assert_array_equal(rule.codes(h, y), codes)
    other = SplitRule(seed=2, label="y", kind="none", strata=[0], test_cut=[0.2], val_cut=[0.3])
    assert (other.codes(h, y) != codes).mean() > 0.2


def test_preprocessor_round_trips_and_inverts_the_target(tmp_path):
    pre = Preprocessor(
        task="regression",
        label="t",
        feature_columns=["a", "b"],
        input_shape=[2],
        center=[1.0, 10.0],
        scale=[2.0, 5.0],
        target_center=100.0,
        target_scale=50.0,
    )
    pre.save(tmp_path)
    again = Preprocessor.load(tmp_path)
    assert again == pre
    batch = {"a": np.array([1.0, 3.0]), "b": np.array([10.0, 20.0]), "t": np.array([150.0, 50.0])}
    out = again(batch)
    np.testing.assert_allclose(out["x"], [[0, 0], [1, 2]])
    np.testing.assert_allclose(out["y"], [1, -1])
    np.testing.assert_allclose(again.decode_target(out["y"]), batch["t"])
