"""Temperature scaling (Guo et al., 2017): one scalar ``T`` that divides a classifier's
logits, fitted by minimising the negative log-likelihood on held-out (val) logits, and the
expected calibration error (ECE) that says whether it helped. Light: numpy and scipy."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

BINS = 15  # equal-width confidence bins, as in Guo et al.


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` (N,) under ``softmax(logits / T)`` (N, C)."""
    logp = log_softmax(np.asarray(logits, np.float64) / temperature, axis=-1)
    return float(-logp[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising NLL on these logits (N, C) and integer labels (N,).

    T > 1 softens an over-confident model, T < 1 sharpens an under-confident one; argmax
    (and so accuracy) does not change. Searched on log T in [-3, 3] (T in about [0.05, 20]).
    """
    if len(labels) == 0:
        raise ValueError("fit_temperature: no rows to fit on")
    res = minimize_scalar(
        lambda log_t: nll(logits, labels, float(np.exp(log_t))), bounds=(-3.0, 3.0), method="bounded"
    )
    return float(np.exp(res.x))


def ece(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error: the row-weighted mean, over confidence bins, of
    |accuracy − mean confidence| (probabilities (N, C), labels (N,))."""
    conf = probabilities.max(-1)
    right = probabilities.argmax(-1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(right[inside].mean() - conf[inside].mean())
    return float(total)


def calibrated(logits: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(logits / T)``."""
    return softmax(np.asarray(logits, np.float64) / temperature, axis=-1)
