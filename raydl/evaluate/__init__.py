"""Evaluation: test metrics of the best checkpoint."""
