"""raydl: a deep-learning runtime on Ray. One declarative job spec carries a model
through data preparation, training and evaluation on a laptop or a Ray cluster;
``raydl.Predictor.from_run(run_dir)`` answers raw rows with the trained model, without Ray."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "JobSpec",
    "Predictor",
    "RaydlError",
    "RequestError",
    "SpecError",
    "load_spec",
    "run",
    "load_model",
    "load_preprocessor",
    "__version__",
]

if TYPE_CHECKING:
    from pathlib import Path

    import torch.nn as nn

    from raydl.data.preprocess import Preprocessor
    from raydl.pipeline import RunResult

from raydl._version import __version__
from raydl.checks import load_spec
from raydl.errors import RaydlError, RequestError, SpecError
from raydl.spec import JobSpec


def __getattr__(name: str) -> Any:
    # Predictor imports torch: loaded when first used, so `import raydl` stays light
    if name == "Predictor":
        from raydl.predict import Predictor

        return Predictor
    raise AttributeError(f"module 'raydl' has no attribute {name!r}")


def run(spec: JobSpec, **kwargs: Any) -> RunResult:
    """Run a job end to end; see :func:`raydl.pipeline.run`."""
    from raydl.pipeline import run as _run

    return _run(spec, **kwargs)


def load_model(run_dir: str | Path) -> nn.Module:
    """The best checkpoint's model of a run, in eval mode, on CPU; no Ray needed."""
    from raydl.rundir import RunDir
    from raydl.train.checkpoint import load_model_dir

    return load_model_dir(RunDir.open(run_dir).best_checkpoint)


def load_preprocessor(run_dir: str | Path) -> Preprocessor:
    """The run's fitted preprocessor (raw rows → model input); no Ray needed."""
    from raydl.data.preprocess import Preprocessor
    from raydl.rundir import RunDir

    return Preprocessor.load(RunDir.open(run_dir).preprocessor)
