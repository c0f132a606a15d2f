"""fp32 vs bf16 autocast: training step time and peak memory, side by side, for the CNN
of the zoo and a small Transformer encoder classifier.

Each (model, precision) pair runs in its own fresh process so peak memory is its own:
on CPU the growth of the peak resident set over the built model and batch (ru_maxrss), on GPU
torch.cuda.max_memory_allocated. A step is forward + loss + backward + AdamW step, as in
raydl's loop (autocast around forward and loss, fp32 master weights). Prints a table with
bf16/fp32 ratios and writes benchmarks/results/precision.json. Asserts nothing.

    python benchmarks/precision.py                    # CPU here; a GPU if one is visible
    python benchmarks/precision.py --steps 30 --batch-size 128
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _build(name: str):
    import torch.nn as nn

    from raydl.models import build_model

    if name == "cnn":  # the zoo's CNN on 28x28 greyscale images (Fashion-MNIST's shape)
        model = build_model("cnn", (1, 28, 28), 10, {"channels": [32, 64], "hidden": 128})
        return model, (1, 28, 28), None

    class Encoder(nn.Module):  # BERT-sized block, small: 4 layers, d=256, 128 tokens
        def __init__(self, vocab=8000, d=256, layers=4, heads=4, classes=5):
            super().__init__()
            self.embed = nn.Embedding(vocab, d)
            layer = nn.TransformerEncoderLayer(d, heads, 4 * d, batch_first=True, dropout=0.1)
            self.encoder = nn.TransformerEncoder(layer, layers)
            self.head = nn.Linear(d, classes)

        def forward(self, x):  # x: (B, T) token ids
            return self.head(self.encoder(self.embed(x)).mean(1))  # (B, classes)

    return Encoder(), (128,), 8000


def child(model_name: str, precision: str, steps: int, batch_size: int) -> dict:
    import torch

    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, shape, vocab = _build(model_name)
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    if vocab:
        x = torch.randint(0, vocab, (batch_size, *shape), device=device)
        y = torch.randint(0, 5, (batch_size,), device=device)
    else:
        x = torch.randn(batch_size, *shape, device=device)
        y = torch.randint(0, 10, (batch_size,), device=device)

    # CPU: the peak RSS after model and batch exist; the steps' activations, gradients and
    # optimizer state are what grows past it
    rss_base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def step():
        opt.zero_grad(set_to_none=True)
        if precision == "bf16":
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                loss = loss_fn(model(x).float(), y)
        else:
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up: allocator, kernels, optimizer state
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / steps
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:  # growth of the peak RSS over model + batch (ru_maxrss is KiB on Linux)
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_base) / 1024
    return {"device": str(device), "step_ms": 1000 * seconds, "peak_mb": peak_mb}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", type=Path, default=RESULTS / "precision.json")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.steps, args.batch_size)))
        return

    rows = []
    for model_name in ("cnn", "transformer"):
        result = {}
        for precision in ("fp32", "bf16"):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    model_name,
                    precision,
                    "--steps",
                    str(args.steps),
                    "--batch-size",
                    str(args.batch_size),
                ],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
            )
            result[precision] = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"model": model_name, **result})

    device = rows[0]["fp32"]["device"]
    mem = "peak GPU MiB allocated" if device.startswith("cuda") else "peak RSS growth MiB"
    print(
        f"device {device}, batch {args.batch_size}, {args.steps} timed steps, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"| model | fp32 step ms | bf16 step ms | bf16/fp32 time | fp32 {mem} | bf16 {mem} | bf16/fp32 mem |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        f, b = r["fp32"], r["bf16"]
        print(
            f"| {r['model']} | {f['step_ms']:.1f} | {b['step_ms']:.1f} | {b['step_ms'] / f['step_ms']:.2f} "
            f"| {f['peak_mb']:.0f} | {b['peak_mb']:.0f} | {b['peak_mb'] / f['peak_mb']:.2f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "rows": rows,
                "batch_size": args.batch_size,
                "steps": args.steps,
                "device": device,
                "load_avg": os.getloadavg(),
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
