"""Temperature scaling on a real model's logits (logistic regression on digits, no Ray):
made over-confident, the fitted T is > 1 and the test ECE drops; accuracy is unchanged."""

import numpy as np
import pytest
import sklearn.datasets
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from raydl.evaluate.calibration import calibrated, ece, fit_temperature, nll


@pytest.fixture(scope="module")
def logits():
    x, y = sklearn.datasets.load_digits(return_X_y=True)
    x_tr, x_rest, y_tr, y_rest = train_test_split(x / 16, y, test_size=0.5, random_state=0, stratify=y)
    x_val, x_te, y_val, y_te = train_test_split(
        x_rest, y_rest, test_size=0.5, random_state=0, stratify=y_rest
    )
    model = LogisticRegression(C=1.0, max_iter=1000).fit(x_tr, y_tr)
    return model.decision_function(x_val), y_val, model.decision_function(x_te), y_te


def test_an_over_confident_model_gets_t_above_1_and_a_lower_ece(logits):
    val, y_val, test, y_test = logits
    sharp_val, sharp_test = val * 10, test * 10  # the same ranking, far too sure of itself
    t = fit_temperature(sharp_val, y_val)
    assert t > 1.5
    assert nll(sharp_val, y_val, t) < nll(sharp_val, y_val)
    before, after = ece(calibrated(sharp_test, 1.0), y_test), ece(calibrated(sharp_test, t), y_test)
    assert after < before / 2, (before, after)
    assert (calibrated(sharp_test, t).argmax(-1) == sharp_test.argmax(-1)).all()


def test_scaling_the_logits_by_k_scales_the_temperature_by_k(logits):
    val, y_val, _, _ = logits
    assert fit_temperature(val * 3, y_val) == pytest.approx(3 * fit_temperature(val, y_val), rel=0.02)


def test_ece_of_a_perfectly_calibrated_toy_is_small_and_of_a_liar_large():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.5, 1, 20000)
    labels = (rng.uniform(size=p.size) > p).astype(int)  # class 0 right with probability p
    probs = np.stack([p, 1 - p], -1)
    assert ece(probs, labels) < 0.02
    assert ece(np.stack([np.ones_like(p), np.zeros_like(p)], -1), labels) > 0.2
