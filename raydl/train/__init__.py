"""Training on Ray Train: the per-worker loop (loop.py), its components (optim.py) and the
driver side that builds and runs the TorchTrainer (trainer.py)."""
