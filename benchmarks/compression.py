"""The compression stage's candidates side by side, PyTorch fp32 eager = 1.0x, for the
Fashion-MNIST CNN and a Linear-heavy tabular MLP, and the issue's goals checked on them.

Each model is trained by ``raydl run`` (embedded Ray, one Ray Train worker) on a subset,
then its ``compress:`` stage runs every technique this version has (dynamic_int8,
static_int8 for the CNN only, fp16, bf16, onnx, onnx_int8, prune_l1, prune_structured)
under one procedure: 1 torch / onnxruntime intra-op thread,
warm-up, batch-1 p50/p95 over ``--repetitions`` calls, rows/s at batch 64. Ratios are
against the original model measured in the same run, so they stay meaningful on a busy
machine; absolute milliseconds do not.

- cnn: Fashion-MNIST, ``--fashion-rows`` images (80/10/10 split), cnn [16, 32] hidden 128,
  ``--epochs`` epochs;
- mlp: a generated 3-class table (sklearn ``make_classification``, ``--table-rows`` rows,
  40 features), mlp hidden [512, 512], ``--epochs`` epochs.

Goals (issue 14) checked here: dynamic int8 of the MLP (the faster of its two backends,
torch.ao's and onnxruntime's quantize_dynamic) >= 2x smaller, >= 1.5x faster at
batch 1, <= 1 point accuracy drop; ONNX agrees on >= 99.9 % of test labels and is
>= 1.3x faster at batch 1 (both models); structured pruning of half the channels >= 1.8x
fewer parameters with a measured speed-up, within 1.5 points after a one-epoch fine-tune
(``compress.finetune_epochs: 1``, the ``prune_structured+ft`` row); static int8 of the CNN
>= 1.5x faster at batch 64. The CNN's table also has FGSM/PGD accuracy (epsilon 0.1 in its
standardized input units, 256 test rows; int8/ONNX by transfer from the original).
Distillation is measured by benchmarks/distill.py.

    .venv/bin/python benchmarks/compression.py [--fashion-rows 12000] [--table-rows 20000] [--epochs 3]

Writes benchmarks/results/compression.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import pandas as pd

import raydl
from raydl.spec import validate_spec

TECHNIQUES = ["dynamic_int8", "fp16", "bf16", "onnx", "onnx_int8", "prune_l1", "prune_structured"]
CNN_ONLY = ["static_int8"]  # refused at validation for the MLP


def table_csv(path: Path, rows: int) -> Path:
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=rows, n_features=40, n_informative=20, n_classes=3, class_sep=1.5, random_state=0
    )
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(40)])
    frame["label"] = y
    frame.to_csv(path / "table.csv", index=False)
    return path / "table.csv"


def specs(args, tmp: Path) -> dict[str, dict]:
    compress = {
        "techniques": TECHNIQUES,
        "measure": {"threads": 1, "repetitions": args.repetitions, "warmup": 20, "throughput_batches": 30},
        "select": {"max_metric_drop": 0.01, "prefer": "latency"},
        "finetune_epochs": 1,  # prune_structured+ft: the pruned model fine-tuned one epoch
    }
    train = {"workers": 1, "cpus_per_worker": 1, "epochs": args.epochs, "batch_size": 128}
    split = {"method": "stratified", "val": 0.1, "test": 0.1}
    return {
        "cnn": {
            "name": "bench-compress-cnn",
            "data": {
                "source": {
                    "type": "builtin",
                    "name": "fashion_mnist",
                    "limit": args.fashion_rows,
                    "subset": "random",
                },
                "label": "label",
                "split": split,
            },
            "model": {"arch": "cnn", "params": {"channels": [16, 32], "hidden": 128, "dropout": 0.1}},
            "train": train | {"optimizer": {"type": "adamw", "lr": 3.0e-3}},
            "compress": compress
            | {"techniques": TECHNIQUES[:1] + CNN_ONLY + TECHNIQUES[1:], "robustness": {"rows": 256}},
        },
        "mlp": {
            "name": "bench-compress-mlp",
            "data": {
                "source": {"type": "csv", "path": str(table_csv(tmp, args.table_rows))},
                "label": "label",
                "split": split,
            },
            "model": {"arch": "mlp", "params": {"hidden": [512, 512], "dropout": 0.0}},
            "train": train | {"optimizer": {"type": "adamw", "lr": 1.0e-3}},
            "compress": compress,
        },
    }


def show(name: str, result: dict) -> None:
    facts = f"{result['test_rows']} test rows, {result['threads']} thread(s)"
    print(f"\n{name}: {facts}, selected: {result['selected']}")
    head = (
        f"{'candidate':<14}{'accuracy':>9}{'agree':>8}{'KiB':>9}{'x smaller':>10}{'p50 ms':>9}{'p95 ms':>9}"
    )
    attacked = result.get("robustness") is not None
    if attacked:
        head += f"{'FGSM':>8}{'PGD':>8}{'attack':>10}"
    print(head + f"{'x b1':>7}{'x b64':>7}  gate")
    for r in result["candidates"]:
        agree = f"{r.get('label_agreement', 1.0):.4f}"
        robust = f"{r['fgsm_accuracy']:>8.4f}{r['pgd_accuracy']:>8.4f}{r['attack']:>10}" if attacked else ""
        print(
            f"{r['name']:<14}{r['metrics']['accuracy']:>9.4f}{agree:>8}{r['size_bytes'] / 1024:>9.1f}"
            f"{r['size_ratio']:>10.2f}{r['latency_p50_ms']:>9.3f}{r['latency_p95_ms']:>9.3f}{robust}"
            f"{r['speedup_b1']:>7.2f}{r['speedup_b64']:>7.2f}  {r['gate']}"
        )


def goals(results: dict[str, dict]) -> list[tuple[str, bool | None, str]]:
    rows = {m: {r["name"]: r for r in res["candidates"]} for m, res in results.items()}
    out: list[tuple[str, bool | None, str]] = []
    # dynamic int8 has two backends behind one interface: torch.ao (dynamic_int8) and
    # onnxruntime's quantize_dynamic (onnx_int8); the gate picks by measurement, so the goal
    # is checked on the faster of the two, and both are printed
    both = {n: rows["mlp"][n] for n in ("dynamic_int8", "onnx_int8") if n in rows["mlp"]}
    best = max(both, key=lambda n: both[n]["speedup_b1"])
    q = both[best]
    each = ", ".join(f"{n} {r['speedup_b1']:.2f}x" for n, r in both.items())
    out.append(("mlp dynamic int8 >= 2x smaller", q["size_ratio"] >= 2, f"{q['size_ratio']:.2f}x ({best})"))
    out.append(("mlp dynamic int8 >= 1.5x faster at batch 1", q["speedup_b1"] >= 1.5, f"{each}"))
    out.append(
        ("mlp dynamic int8 <= 1 point drop", q["drop"] <= 0.01, f"{q['drop'] * 100:.2f} points ({best})")
    )
    for m in ("cnn", "mlp"):
        o = rows[m]["onnx"]
        out.append(
            (
                f"{m} onnx >= 99.9% label agreement",
                o["label_agreement"] >= 0.999,
                f"{o['label_agreement']:.4%}",
            )
        )
        out.append((f"{m} onnx >= 1.3x faster at batch 1", o["speedup_b1"] >= 1.3, f"{o['speedup_b1']:.2f}x"))
    for m in ("cnn", "mlp"):
        p = rows[m].get("prune_structured")
        if p is None:
            continue
        fewer = rows[m]["original"]["params"] / p["params"]
        out.append((f"{m} structured pruning (0.5) >= 1.8x fewer params", fewer >= 1.8, f"{fewer:.2f}x"))
        out.append(
            (
                f"{m} structured pruning measured speed-up at batch 1",
                p["speedup_b1"] > 1,
                f"{p['speedup_b1']:.2f}x",
            )
        )
        ft = rows[m].get("prune_structured+ft", p)
        out.append(
            (
                f"{m} structured pruning within 1.5 points after its fine-tune",
                ft["drop"] <= 0.015,
                f"{ft['drop'] * 100:.2f} points ({p['drop'] * 100:.2f} before it)",
            )
        )
    s = rows["cnn"]["static_int8"]
    out.append(
        ("cnn static int8 >= 1.5x faster at batch 64", s["speedup_b64"] >= 1.5, f"{s['speedup_b64']:.2f}x")
    )
    out.append(("cnn static int8 <= 1 point drop", s["drop"] <= 0.01, f"{s['drop'] * 100:.2f} points"))
    out.append(
        ("distilled mobilenet keeps >= 97% and beats the student alone", None, "see benchmarks/distill.py")
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fashion-rows", type=int, default=12000)
    ap.add_argument("--table-rows", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repetitions", type=int, default=300)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "compression.json")
    args = ap.parse_args()
    load_before = os.getloadavg()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, raw in specs(args, Path(tmp)).items():
            run = raydl.run(validate_spec(raw), runs_root=Path(tmp) / "runs")
            results[name] = json.loads((run.run_dir / "compress" / "candidates.json").read_text())
    for name, result in results.items():
        show(name, result)
    print(
        f"\nload average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)"
    )
    checked = goals(results)
    for goal, ok, value in checked:
        print(f"  {'held' if ok else 'NOT held' if ok is False else '—':>8}  {goal}: {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "load_average_before": load_before,
                "load_average_after": os.getloadavg(),
                "results": results,
                "goals": [{"goal": g, "held": ok, "value": v} for g, ok, v in checked],
            },
            indent=2,
            default=float,
        )
    )


if __name__ == "__main__":
    main()
