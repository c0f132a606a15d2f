#!/usr/bin/env python
"""Search efficiency: full grid vs random search vs Optuna TPE + ASHA, side by side.

Same problem (scikit-learn digits, an MLP, val accuracy), same discrete space (lr ×
hidden width × dropout), same epoch cap. The search algorithms and the scheduler are
built by raydl's own ``raydl.tune.search`` from ``TuneSpec`` objects, exactly as a
``tune:`` section builds them. The trainable is a plain single-process torch loop, not a
Ray Train run per trial: this compares how many epochs each strategy spends, and Ray
Train's fixed start-up cost per trial (≈ 10–20 s here) would only add the same constant
per trial to every strategy.

For each strategy and seed: the total number of epochs trained (and the wall time) until
some trial first reports a val accuracy within 0.5 % (absolute 0.005) of the best
accuracy the full grid reached with that seed. Goal: TPE + ASHA ≤ ⅓ of the grid's budget.

    PYTHONPATH=. python benchmarks/search_efficiency.py [--seeds 3]
Results: benchmarks/results/search_efficiency.json (and the table on stdout).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import ray
import torch
import torch.nn as nn
from ray import tune
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from raydl.spec import TuneSpec
from raydl.tune.search import _scheduler, _search_alg, param_space

SPACE = {
    "lr": {"choice": [3e-4, 1e-3, 3e-3, 3e-2]},
    "hidden": {"choice": [8, 32, 128]},
    "dropout": {"choice": [0.0, 0.5]},
}
EPOCHS = 6
TOLERANCE = 0.005


def _data(seed: int):
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    xt, xv, yt, yv = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
    return torch.as_tensor(xt), torch.as_tensor(yt), torch.as_tensor(xv), torch.as_tensor(yv)


def trainable(config):
    torch.set_num_threads(1)
    seed = config["seed"]
    torch.manual_seed(seed)
    xt, yt, xv, yv = _data(seed)
    model = nn.Sequential(
        nn.Linear(64, config["hidden"]),
        nn.ReLU(),
        nn.Dropout(config["dropout"]),
        nn.Linear(config["hidden"], 10),
    )
    opt = torch.optim.AdamW(model.parameters(), lr=config["lr"])
    g = torch.Generator().manual_seed(seed)
    for _epoch in range(EPOCHS):
        model.train()
        for idx in torch.randperm(len(xt), generator=g).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = float((model(xv).argmax(-1) == yv).float().mean())
        tune.report({"val_accuracy": acc, "t": time.time()})


def run(strategy: str, seed: int, storage: str) -> list[tuple[float, str, int, float]]:
    """Every report of the search, as (time, trial, epoch, accuracy), in time order."""
    search, scheduler, samples = {
        "grid": ("grid", None, 1),
        "random": ("random", None, 24),
        "tpe+asha": ("optuna", {"type": "asha", "grace_period": 1, "reduction_factor": 3}, 24),
    }[strategy]
    spec = TuneSpec(
        search=search,
        scheduler=scheduler,
        num_samples=samples,
        metric="val_accuracy",
        mode="max",
        space=SPACE,
        max_concurrent_trials=2,
    )
    space = {**param_space(spec), "seed": seed}
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"CPU": 1}),
        param_space=space,
        tune_config=tune.TuneConfig(
            metric="val_accuracy",
            mode="max",
            search_alg=_search_alg(spec, seed, 2),
            scheduler=_scheduler(spec, EPOCHS),
            num_samples=samples,
            max_concurrent_trials=2,
            reuse_actors=True,  # no process start per trial: epochs dominate, as they should
        ),
        run_config=tune.RunConfig(name=f"{strategy}-{seed}", storage_path=storage, verbose=0),
    )
    grid = tuner.fit()
    rows = []
    for result in grid:
        df = result.metrics_dataframe
        for _, r in df.iterrows():
            rows.append((float(r["t"]), result.path, int(r["training_iteration"]), float(r["val_accuracy"])))
    return sorted(rows)


def budget_to_reach(rows, target: float, start: float) -> tuple[int | None, float | None]:
    for i, (t, _, _, acc) in enumerate(rows):
        if acc >= target:
            return i + 1, t - start
    return None, None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    storage = f"/tmp/raydl-search-efficiency-{os.getpid()}"
    ray.init(
        address="local",
        num_cpus=2,
        object_store_memory=256 * 1024 * 1024,
        include_dashboard=False,
        log_to_driver=False,
    )
    load = os.getloadavg()
    results = []
    try:
        for seed in range(args.seeds):
            runs = {}
            for strategy in ("grid", "random", "tpe+asha"):
                runs[strategy] = run(strategy, seed, storage)
            best = max(acc for *_, acc in runs["grid"])
            target = best - TOLERANCE
            for strategy, rows in runs.items():
                start = rows[0][0]
                epochs, seconds = budget_to_reach(rows, target, start)
                results.append(
                    {
                        "seed": seed,
                        "strategy": strategy,
                        "grid_best": best,
                        "epochs_to_target": epochs,
                        "seconds_to_target": seconds,
                        "epochs_total": len(rows),
                        "trials": len({trial for _, trial, _, _ in rows}),
                        "best": max(acc for *_, acc in rows),
                    }
                )
    finally:
        ray.shutdown()
    print(f"load average before: {load}, after: {os.getloadavg()}")
    print(
        f"{'seed':>4} {'strategy':>9} {'grid best':>9} {'epochs→target':>13} {'s→target':>9} "
        f"{'epochs total':>12} {'trials':>6}"
    )
    for r in results:
        print(
            f"{r['seed']:>4} {r['strategy']:>9} {r['grid_best']:>9.4f} {str(r['epochs_to_target']):>13} "
            f"{(r['seconds_to_target'] or float('nan')):>9.1f} {r['epochs_total']:>12} {r['trials']:>6}"
        )
    summary = {}
    for strategy in ("grid", "random", "tpe+asha"):
        e = [r["epochs_to_target"] for r in results if r["strategy"] == strategy]
        s = [r["seconds_to_target"] for r in results if r["strategy"] == strategy]
        reached = [x for x in e if x is not None]
        summary[strategy] = {
            "reached": f"{len(reached)}/{len(e)}",
            "mean_epochs": float(np.mean(reached)) if reached else None,
            "mean_seconds": float(np.mean([x for x in s if x is not None])) if reached else None,
        }
    g = summary["grid"]["mean_epochs"]
    for strategy, s in summary.items():
        ratio = s["mean_epochs"] / g if s["mean_epochs"] and g else None
        s["epochs_vs_grid"] = ratio
        print(
            f"{strategy:>9}: reached {s['reached']}, mean epochs {s['mean_epochs']}, "
            f"mean s {s['mean_seconds']}, budget ratio vs grid {ratio}"
        )
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "search_efficiency.json").write_text(
        json.dumps({"rows": results, "summary": summary, "load": load}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
