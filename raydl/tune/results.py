"""The results table of a search: every trial's reported epochs, recorded on the driver
as they arrive (:class:`EpochLog`), and at the end ``tune/trials.csv``/``trials.json``
(one row per trial: status, epochs, best and last metric, config), ``tune/best.json`` and
the best trial's checkpoint in ``tune/best_checkpoint``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune

from raydl import artifacts
from raydl.errors import RaydlError
from raydl.rundir import RunDir
from raydl.spec import JobSpec, TuneSpec
from raydl.train.trials import trial_checkpoint
from raydl.tune.space import search_metric, trial_spec

TRIALS_CSV, TRIALS_JSON, BEST_JSON = "trials.csv", "trials.json", "best.json"


@dataclass
class SearchResult:
    best_config: dict[str, Any]
    best_metrics: dict[str, Any]
    best_checkpoint: Path
    best_spec: JobSpec
    trials: list[dict[str, Any]]
    best_epochs: list[dict[str, Any]]  # the best trial's per-epoch metrics


EPOCH_LOG = "epochs.jsonl"
ENDED_LOG = "ended.txt"
FAILURE_LOG = "failures.jsonl"


def one_line(error: BaseException | None) -> str:
    """A trial's error as one line: the user's own exception inside Ray's wrapper (a
    RayTaskError holds it as ``cause``), else the first line of Ray's message (a killed
    process: ``ActorDiedError: The actor died unexpectedly …``)."""
    if error is None:
        return ""
    seen: set[int] = set()
    e: BaseException = error
    while id(e) not in seen:
        seen.add(id(e))
        inner = getattr(e, "cause", None) or e.__cause__
        if not isinstance(inner, BaseException):
            break
        e = inner
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    # Ray prefixes a task's error with its traceback; the exception's own line is last
    text = lines[-1] if lines and lines[0].startswith(("ray::", "Traceback")) else (lines or [""])[0]
    name = type(e).__name__.removeprefix("RayTaskError(").removesuffix(")")
    return f"{name}: {text}" if text and not text.startswith(name) else text or name


class EpochLog(tune.Callback):
    """Every result every trial reports, appended on the driver to ``tune/epochs.jsonl``
    as it arrives; :func:`write_results` builds the trials table from it. The ids of the
    trials that ended (completed, stopped by the scheduler, failed) go to ``tune/ended.txt``;
    every crash of a trial, retried or final, to ``tune/failures.jsonl`` with its error.

    Tune's own per-trial ``result.json`` loses rows whenever a trial is paused and
    restored (its JSON logger copies the file back from storage, which is synced only
    every few seconds), and synchronous PBT pauses every trial at every perturbation."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        with open(self.folder / EPOCH_LOG, "a") as f:
            f.write(json.dumps({"trial_id": trial.trial_id, **result}, default=str) + "\n")

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        with open(self.folder / ENDED_LOG, "a") as f:
            f.write(trial.trial_id + "\n")

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        self._failure(trial, retried=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._failure(trial, retried=False)
        self.on_trial_complete(iteration, trials, trial)

    def _failure(self, trial, retried: bool) -> None:
        row = {
            "trial_id": trial.trial_id,
            "failure": trial.num_failures,
            "retried": retried,
            "error": one_line(_latest_error(trial)),
        }
        with open(self.folder / FAILURE_LOG, "a") as f:
            f.write(json.dumps(row) + "\n")


def _latest_error(trial) -> BaseException | None:
    """The error Tune just recorded for ``trial``, from the trial's local folder (Tune's
    ``get_pickled_error`` reads its storage copy, synced only later)."""
    from ray import cloudpickle

    path = trial.pickled_error_file
    if path and Path(path).is_file():
        with open(path, "rb") as f:
            return cloudpickle.load(f)
    return None


def _failures(run: RunDir) -> dict[str, list[dict[str, Any]]]:
    """Each trial's crashes, in order, from :class:`EpochLog`'s ``failures.jsonl``."""
    path = run.path / "tune" / FAILURE_LOG
    out: dict[str, list[dict[str, Any]]] = {}
    for line in path.read_text().splitlines() if path.is_file() else []:
        if line.strip():
            row = json.loads(line)
            out.setdefault(row["trial_id"], []).append(row)
    return out


def _epoch_frames(run: RunDir) -> dict[str, Any]:
    """The trials' results from :class:`EpochLog`, one frame per trial id, flattened
    like Tune's ``metrics_dataframe`` (``config/<key>``)."""
    import pandas as pd

    path = run.path / "tune" / EPOCH_LOG
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    frame = pd.json_normalize(rows, sep="/", max_level=1)
    return {tid: df.reset_index(drop=True) for tid, df in frame.groupby("trial_id", sort=False)}


def write_results(spec: JobSpec, grid, run: RunDir) -> SearchResult:
    """The trials table (CSV + JSON), the best config and its checkpoint under ``tune/``."""
    t = spec.tune
    assert t is not None
    out = run.path / "tune"
    out.mkdir(exist_ok=True)
    sign = 1 if t.mode == "max" else -1
    metric = search_metric(t)
    frames = _epoch_frames(run)
    crashes = _failures(run)
    rows = []
    for result in grid:
        trial_id = _trial_id(result)
        df = frames.get(trial_id or "", result.metrics_dataframe)
        epochs = 0 if df is None or df.empty else int(df.get("epoch", df["training_iteration"]).max())
        values = [] if df is None or metric not in df else [v for v in df[metric] if v == v]
        best = (max if sign > 0 else min)(values) if values else None
        spread = df[f"{metric}_std"].iloc[-1] if t.cv and values and df is not None else None
        own_stop = bool(df is not None and "stopped_early" in df and df["stopped_early"].any())
        if result.error is not None:
            status = "error"
        elif epochs < spec.train.epochs and not own_stop:
            status = "stopped by scheduler"
        elif own_stop:
            status = "early stopping"
        else:
            status = "completed"
        config = _trial_config(result, df)
        crashed = crashes.get(trial_id or "", [])
        rows.append(
            {
                "trial": trial_id,
                "trial_path": result.path,
                "status": status,
                "epochs": epochs,
                metric: best,
                f"last_{metric}": values[-1] if values else None,
                # tune.cv: the spread of the trial's fold scores
                **({f"{metric}_std": spread} if spread is not None else {}),
                **{f"config/{k}": v for k, v in config.items()},
                # PBT: how often the trial took another's checkpoint and new values
                "exploited": _exploits(run, trial_id),
                # tune.max_failures: times the trial crashed and was restarted from its
                # last checkpoint; a failed trial's last error, as one line
                "retries": sum(c["retried"] for c in crashed),
                "error": one_line(result.error) if result.error is not None else "",
                "_df": df,
                "_result": result,
            }
        )
    failed = [r for r in rows if r["status"] == "error"]
    if failed and len(failed) == len(rows):
        _write_table(out, rows, metric, sign)
        raise RaydlError(
            f"tune: every trial failed ({len(rows)}); the first: {failed[0]['error']} "
            f"(all errors in {out / TRIALS_CSV})"
        )
    # a failed trial's epochs may have reported the metric; its run did not finish
    done = [r for r in rows if r[metric] is not None and r["status"] != "error"]
    if not done:
        raise RaydlError("tune: no trial reported " + metric)
    best_row = max(done, key=lambda r: sign * r[metric])
    best_spec = trial_spec(
        spec.model_dump(mode="json"),
        {k.removeprefix("config/"): v for k, v in best_row.items() if k.startswith("config/")},
    )
    best_df = best_row["_df"]
    checkpoint = trial_checkpoint(best_row["_result"], best_df, best_spec)
    keep = [c for c in best_df.columns if c == "epoch" or c == "lr" or c.startswith(("train_", "val_"))]
    best_epochs = [{k: v for k, v in r.items() if v == v} for r in best_df[keep].to_dict("records")]
    _write_table(out, rows, metric, sign)
    target = out / "best_checkpoint"
    artifacts.replace_dir(checkpoint, target)
    best_config = {k.removeprefix("config/"): v for k, v in best_row.items() if k.startswith("config/")}
    best = {
        "config": best_config,
        "trial": best_row["trial"],
        metric: best_row[metric],
        "epochs": best_row["epochs"],
        "checkpoint": str(target),
        "trials": len(rows),
        "failed": [{"trial": r["trial"], "error": r["error"]} for r in failed],
        "retries": sum(r["retries"] for r in rows),
    }
    artifacts.write_json(out / BEST_JSON, best)
    return SearchResult(best_config, best, target, best_spec, rows, best_epochs)


def _write_table(out: Path, rows: list[dict[str, Any]], metric: str, sign: int) -> None:
    """``trials.csv`` and ``trials.json``: best first, failed trials last."""
    import pandas as pd

    for r in rows:
        r.pop("_df", None)
        r.pop("_result", None)
    rows.sort(key=lambda r: (r["status"] == "error", r[metric] is None, -sign * (r[metric] or 0)))
    artifacts.write_with(out / TRIALS_CSV, lambda tmp: pd.DataFrame(rows).to_csv(tmp, index=False))
    artifacts.write_json(out / TRIALS_JSON, rows)


def _trial_id(result) -> str | None:
    """The trial's id, from its directory name. Not ``result.metrics``: a PBT exploit
    decided at a trial's last epoch hands the trial the other trial's last result."""
    trial_id = (result.metrics or {}).get("trial_id")
    m = re.match(r"_?\w*?_([0-9a-f]+_\d{5})_", Path(result.path).name) if result.path else None
    return m.group(1) if m else trial_id


def _trial_config(result, df) -> dict[str, Any]:
    """The config the trial's last epoch trained with. Not ``result.config``: a PBT
    exploit decided at a trial's last epoch hands it new values it never trains with."""
    if df is None or df.empty:
        return dict(result.config or {})
    last = df.iloc[-1]
    config = {k.removeprefix("config/"): last[k] for k in df.columns if k.startswith("config/")}
    return {k: v.item() if hasattr(v, "item") else v for k, v in config.items()} or dict(result.config or {})


def _exploits(run: RunDir, trial_id: str | None) -> int:
    """Times PBT replaced this trial's state and values (one line each in its policy log)."""
    policy = run.ray_storage / "tune" / f"pbt_policy_{trial_id}.txt"
    return len(policy.read_text().splitlines()) if trial_id and policy.is_file() else 0


def interrupted(t: TuneSpec, run: RunDir) -> bool:
    """Whether the search stopped before every trial ended. Tune catches Ctrl-C, stops
    its trials and returns as if done, marking them terminated in memory, and the state
    it saved may be seconds old: only trials that ended through Tune's own stop (done,
    stopped by the scheduler, or failed) are in :class:`EpochLog`'s list."""
    grids = math.prod(len(v["grid"]) for v in t.space.values() if "grid" in v)
    expected = grids * (1 if t.search == "grid" else t.num_samples)
    path = run.path / "tune" / ENDED_LOG
    ended = set(path.read_text().split()) if path.is_file() else set()
    return len(ended) < expected
