"""Hyperparameter search, the stage: build (or restore) the tuner, run every trial, and
write the results table; the best trial's spec and checkpoint flow on to evaluation.

The parts: :mod:`raydl.tune.space` (``tune.space`` → Tune's param_space, a trial's
spec), :mod:`raydl.tune.tuner` (the Tuner over the job's training loop, its search
algorithm and scheduler) and :mod:`raydl.tune.results` (the trials table). The space is
checked before Ray starts, by :func:`raydl.checks.check_space`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from ray import tune

from raydl.catalog import SPACES
from raydl.checks import check_space
from raydl.data.prepare import PreparedData
from raydl.rundir import RunDir
from raydl.spec import JobSpec
from raydl.train.trials import TRIAL_CPU, concurrent_trials, in_trial, trial_resources
from raydl.train.trials import best_checkpoint as _best_checkpoint
from raydl.train.trials import trial_checkpoint as _trial_checkpoint
from raydl.tune.results import (
    BEST_JSON,
    ENDED_LOG,
    EPOCH_LOG,
    TRIALS_CSV,
    TRIALS_JSON,
    EpochLog,
    SearchResult,
    interrupted,
    write_results,
)
from raydl.tune.space import param_space, search_metric, trial_spec
from raydl.tune.tuner import _scheduler, _search_alg, _trainable, build_tuner, cross_validated

# Names this module held before it was split, still importable from here.
__all__ = [
    "BEST_JSON",
    "ENDED_LOG",
    "EPOCH_LOG",
    "SPACES",
    "TRIALS_CSV",
    "TRIALS_JSON",
    "TRIAL_CPU",
    "EpochLog",
    "SearchResult",
    "_best_checkpoint",
    "_scheduler",
    "_search_alg",
    "_trial_checkpoint",
    "build_tuner",
    "check_space",
    "concurrent_trials",
    "cross_validated",
    "in_trial",
    "param_space",
    "run_search",
    "search_metric",
    "trial_resources",
    "trial_spec",
    "write_results",
]


@contextlib.contextmanager
def _quiet_tune_output() -> Iterator[None]:
    """Without -v (the root logger above INFO), a search prints nothing of its own: Ray
    2.60's new output engine prints the experiment's box, its paths and a TensorBoard hint
    even at ``verbose=0`` (its legacy engine at 0 prints nothing), and Optuna logs every
    study it creates at INFO."""
    if logging.getLogger().isEnabledFor(logging.INFO):
        yield
        return
    import optuna

    saved_engine, saved_optuna = os.environ.get(_TUNE_OUTPUT), optuna.logging.get_verbosity()
    os.environ[_TUNE_OUTPUT] = "0"  # read by Tune when fit() starts
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(saved_optuna)
        if saved_engine is None:
            os.environ.pop(_TUNE_OUTPUT, None)
        else:
            os.environ[_TUNE_OUTPUT] = saved_engine


_TUNE_OUTPUT = "RAY_AIR_NEW_OUTPUT"


def run_search(spec: JobSpec, prepared: PreparedData, run: RunDir, resume: bool = False) -> SearchResult:
    """Run (or resume) the search; write ``tune/`` and return the best trial.

    Raises:
        KeyboardInterrupt: the search was stopped before every trial ended.
        RaydlError: no trial reported the search metric.
    """
    t = spec.tune
    assert t is not None
    tune_dir = run.ray_storage / "tune"
    if resume and tune.Tuner.can_restore(str(tune_dir)):
        tuner = tune.Tuner.restore(str(tune_dir), _trainable(spec, prepared, run), resume_errored=True)
    else:
        tuner = build_tuner(spec, prepared, run)
    with _quiet_tune_output():
        grid = tuner.fit()
    if interrupted(t, run):
        # Tune catches Ctrl-C, saves the experiment and returns as if done: a stopped
        # search must not go on to evaluation as if it had finished
        raise KeyboardInterrupt(f"search stopped; continue it with: raydl tune --resume {run.path}")
    return write_results(spec, grid, run)
