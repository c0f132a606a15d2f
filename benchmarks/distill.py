"""Distillation into a light mobilenet student, against the same student trained alone,
and the issue's goal checked on them: a distilled student with <= 1/2 of the teacher's
parameters keeps >= 97 % of the teacher's test accuracy AND beats the same student
trained alone for the same epochs (else the distillation did nothing).

Each dataset's teacher (cnn) is trained by ``raydl run`` (embedded Ray, one worker: in
the driver); its ``compress:`` stage then trains the student twice through the same
training loop and ``train:`` fields, the same epochs and seed: ``distilled`` (loss =
alpha·T²·KL(teacher/T ‖ student/T) + (1 − alpha)·CE) and ``student_alone`` (CE only).

- digits: 1,797 8×8 images (55/15/30 by default: ``--digits-test``), teacher cnn [32, 64]
  hidden 128 (53 k params),
  student mobilenet ``--digits-width`` (0.4: 24 k, the widest within half), ``--digits-epochs``;
- fashion: ``--fashion-rows`` Fashion-MNIST images (80/10/10), teacher cnn [32, 64]
  hidden 256 (825 k), student mobilenet ``--fashion-width`` (0.5: 37 k),
  ``--fashion-epochs`` epochs (0: skipped).

Test splits are small (539 digits, 600 Fashion-MNIST rows: one row is 0.19 / 0.17 points);
run a few ``--seed`` values before reading much into a difference of a point or two.

    .venv/bin/python benchmarks/distill.py [--digits-epochs 20] [--fashion-epochs 4] [--seed 0]

Writes benchmarks/results/distill.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import raydl
from raydl.spec import validate_spec


def spec(name: str, data: dict, teacher: dict, width: float, epochs: int, args) -> dict:
    return {
        "name": f"bench-distill-{name}",
        "seed": args.seed,
        "data": data,
        "model": {"arch": "cnn", "params": teacher},
        "train": {
            "workers": 1,
            "cpus_per_worker": 1,
            "epochs": epochs,
            "batch_size": 64,
            "optimizer": {"type": "adamw", "lr": 2.0e-3, "weight_decay": 1.0e-4},
            "scheduler": {"type": "cosine"},
            "checkpoint": {"metric": "val_accuracy", "mode": "max", "keep": 1},
        },
        "compress": {
            "techniques": ["fp16"],  # the stage needs one; the rows that matter are the students'
            "measure": {"threads": 1, "repetitions": 20, "warmup": 5, "throughput_batches": 5},
            "distill": {
                "student": {"arch": "mobilenet", "params": {"width": width}},
                "temperature": args.temperature,
                "alpha": args.alpha,
            },
        },
    }


def specs(args) -> dict[str, dict]:
    out = {
        "digits": spec(
            "digits",
            {
                "source": {"type": "builtin", "name": "digits"},
                "label": "target",
                "split": {"method": "stratified", "val": 0.15, "test": args.digits_test},
            },
            {"channels": [32, 64], "hidden": 128},
            args.digits_width,
            args.digits_epochs,
            args,
        )
    }
    if args.fashion_epochs:
        out["fashion"] = spec(
            "fashion",
            {
                "source": {
                    "type": "builtin",
                    "name": "fashion_mnist",
                    "limit": args.fashion_rows,
                    "subset": "random",
                },
                "label": "label",
                "split": {"method": "stratified", "val": 0.1, "test": 0.1},
            },
            {"channels": [32, 64], "hidden": 256},
            args.fashion_width,
            args.fashion_epochs,
            args,
        )
    return out


def goal(result: dict) -> dict:
    rows = {r["name"]: r for r in result["candidates"]}
    teacher, student, alone = rows["original"], rows["distilled"], rows["student_alone"]
    acc = {
        n: r["metrics"]["accuracy"]
        for n, r in (("teacher", teacher), ("distilled", student), ("alone", alone))
    }
    kept = acc["distilled"] / acc["teacher"]
    share = student["params"] / teacher["params"]
    return {
        "teacher_accuracy": acc["teacher"],
        "distilled_accuracy": acc["distilled"],
        "student_alone_accuracy": acc["alone"],
        "teacher_params": teacher["params"],
        "student_params": student["params"],
        "params_share": share,
        "accuracy_kept": kept,
        "held": share <= 0.5 and kept >= 0.97 and acc["distilled"] > acc["alone"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--digits-epochs", type=int, default=20)
    ap.add_argument("--digits-width", type=float, default=0.4)
    ap.add_argument("--digits-test", type=float, default=0.3, help="digits' test share (0.3: 539 rows)")
    ap.add_argument("--fashion-width", type=float, default=0.5)
    ap.add_argument("--fashion-rows", type=int, default=6000)
    ap.add_argument("--fashion-epochs", type=int, default=4)
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--alpha", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "distill.json")
    args = ap.parse_args()
    load_before = os.getloadavg()
    results, goals = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, raw in specs(args).items():
            run = raydl.run(validate_spec(raw), runs_root=Path(tmp) / "runs")
            results[name] = json.loads((run.run_dir / "compress" / "candidates.json").read_text())
            goals[name] = goal(results[name])
    print(f"\n{'':<8}{'teacher':>16}{'distilled':>16}{'alone':>16}{'params':>18}{'kept':>8}  goal")
    for name, g in goals.items():
        print(
            f"{name:<8}{g['teacher_accuracy']:>16.4f}{g['distilled_accuracy']:>16.4f}"
            f"{g['student_alone_accuracy']:>16.4f}"
            f"{g['student_params']:>9,}/{g['teacher_params']:<8,}{g['accuracy_kept']:>8.1%}"
            f"  {'held' if g['held'] else 'NOT held'}"
        )
    print(
        f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "load_average_before": load_before,
                "load_average_after": os.getloadavg(),
                "goals": goals,
                "results": results,
            },
            indent=2,
            default=float,
        )
    )


if __name__ == "__main__":
    main()
