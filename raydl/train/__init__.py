"""Training on Ray Train: the per-worker loop (loop.py), its components (optim.py), the
driver side that builds and runs the TorchTrainer (trainer.py) and how the datasets reach
its workers (ingest.py)."""
