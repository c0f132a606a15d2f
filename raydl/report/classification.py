"""Classification figures: the confusion matrix, ROC curves and the reliability
(calibration) curve of the test predictions."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from raydl.report.render import figure

CALIBRATION_BINS = 10


def confusion_figure(cm: np.ndarray, classes: list[str]) -> str:
    n = len(cm)
    side = 2.5 + 0.45 * n
    fig, ax = plt.subplots(figsize=(side + 1.2, side), layout="constrained")
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > cm.max() / 2 else "black")  # fmt: skip
    fig.colorbar(im, ax=ax, shrink=0.8)
    return figure(fig, "confusion matrix")


def roc_figure(y: np.ndarray, scores: np.ndarray, classes: list[str]) -> str:
    from sklearn.metrics import auc, roc_curve

    fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    targets = [1] if scores.shape[1] == 2 else range(scores.shape[1])
    for c in targets:
        positives = y == c
        if positives.all() or not positives.any():
            continue
        fpr, tpr, _ = roc_curve(positives, scores[:, c])
        ax.plot(fpr, tpr, label=f"{classes[c]} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)  # beside, not over
    return figure(fig, "ROC curves")


def calibration_figure(y: np.ndarray, scores: np.ndarray) -> str:
    """The reliability curve of the top-class probability: in each confidence bin, how often
    the predicted class was right, against how sure the model was; bars: rows per bin."""
    confidence = scores.max(1)
    correct = (scores.argmax(1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, CALIBRATION_BINS - 1)
    rows = np.bincount(which, minlength=CALIBRATION_BINS)
    seen = rows > 0
    mean_conf = np.bincount(which, confidence, CALIBRATION_BINS)[seen] / rows[seen]
    accuracy = np.bincount(which, correct, CALIBRATION_BINS)[seen] / rows[seen]
    fig, (ax, bins) = plt.subplots(
        2, 1, figsize=(5.5, 5.5), sharex=True, height_ratios=(3, 1), layout="constrained"
    )
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfectly calibrated")
    ax.plot(mean_conf, accuracy, marker="o", label="model")
    ax.set_ylabel("accuracy in bin")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="upper left")
    bins.bar(edges[:-1], rows, width=np.diff(edges), align="edge", color="#999")
    bins.set_xlabel("predicted probability of the predicted class")
    bins.set_ylabel("rows")
    return figure(fig, "calibration curve")
