"""Regression in plain words: the loss is on the standardized target, the metrics are in
the target's own units. One sentence, shown by the terminal and the report alike."""

from __future__ import annotations


def regression_units(label: str, center: float, scale: float, loss: str = "mse") -> str:
    """What the numbers of a regression run are measured in.

    ``center`` and ``scale``: the target's standardization, fitted on the train split.
    """
    return (
        f"Units: the training loss ({loss}: train_loss, val_loss) is on the standardized target "
        f"({label} − {center:.4g}) / {scale:.4g}; val_mae, val_rmse and the test metrics "
        f"(mae, rmse, mse, r2) are in {label}'s own units (mse in units²; r2 has none)."
    )
