"""GPU smoke test: proves the NCCL + bf16 + DeepSpeed ZeRO path of raydl on a machine
with CUDA GPUs, and records throughput. Run it whenever a GPU is at hand:

    python benchmarks/gpu_smoke.py                # every visible GPU, 3 epochs per job
    python benchmarks/gpu_smoke.py --epochs 5 --out /tmp/gpu_smoke.json

What it does, in one embedded Ray sized to the machine's GPUs:
  1. a Ray Train worker group (one worker per GPU) checks that its process group is NCCL
     and all-reduces a CUDA tensor;
  2. raydl trains the digits CNN job (scikit-learn's bundled digits: no download) as
     DDP fp32, DDP bf16, DeepSpeed ZeRO-2 bf16 and ZeRO-3 bf16, one worker per GPU,
     and records test accuracy and steady-state train samples/s (epochs after the first);
  3. benchmarks/precision.py measures fp32 vs bf16 step time and peak GPU memory.
It prints a table and writes benchmarks/results/gpu_smoke.json. With no CUDA GPU it
stops at once with exit code 2 and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
JOBS = [
    ("ddp fp32", ["train.strategy=ddp", "train.precision=fp32"]),
    ("ddp bf16", ["train.strategy=ddp", "train.precision=bf16"]),
    ("zero2 bf16", ["train.strategy=deepspeed", "train.zero_stage=2", "train.precision=bf16"]),
    ("zero3 bf16", ["train.strategy=deepspeed", "train.zero_stage=3", "train.precision=bf16"]),
]


def _nccl_check(config):
    import ray.train
    import torch
    import torch.distributed as dist

    ctx = ray.train.get_context()
    t = torch.ones(1, device=f"cuda:{torch.cuda.current_device()}") * (ctx.get_world_rank() + 1)
    dist.all_reduce(t)
    ray.train.report({"backend": dist.get_backend(), "sum": float(t.item()), "world": ctx.get_world_size()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "gpu_smoke.json")
    args = ap.parse_args()

    import torch

    if not torch.cuda.is_available():
        print(
            "gpu_smoke: needs a CUDA GPU and a CUDA build of torch; none is visible here "
            f"(torch {torch.__version__}, torch.cuda.is_available() is False). Nothing was run.",
            file=sys.stderr,
        )
        sys.exit(2)
    gpus = torch.cuda.device_count()
    os.environ.setdefault("WANDB_MODE", "offline")
    sys.path.insert(0, str(ROOT))

    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    import raydl
    from raydl.runtime import quiet_ray_data
    from raydl.spec import load_spec

    report: dict = {
        "gpus": [torch.cuda.get_device_name(i) for i in range(gpus)],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "ray": ray.__version__,
        "platform": platform.platform(),
    }
    ray.init(num_cpus=max(4, (os.cpu_count() or 2)), num_gpus=gpus, include_dashboard=False)
    quiet_ray_data()
    with tempfile.TemporaryDirectory() as tmp:
        result = TorchTrainer(
            _nccl_check,
            scaling_config=ScalingConfig(num_workers=gpus, use_gpu=True),
            run_config=RunConfig(name="nccl", storage_path=tmp),
        ).fit()
        nccl = result.metrics
        assert nccl["backend"] == "nccl", nccl
        assert nccl["sum"] == gpus * (gpus + 1) / 2, nccl
        report["nccl"] = nccl

        jobs = []
        for name, overrides in JOBS:
            spec = load_spec(
                ROOT / "jobs" / "digits_cnn.yaml",
                [
                    *overrides,
                    f"train.workers={gpus}",
                    "train.use_gpu=true",
                    f"train.epochs={args.epochs}",
                    "train.early_stopping=null",
                    "train.cpus_per_worker=1",
                ],
            )
            run = raydl.run(spec, runs_root=tmp)
            rows = [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
            steady = [r["train_samples_per_s"] for r in rows[1:]] or [rows[0]["train_samples_per_s"]]
            jobs.append(
                {
                    "job": name,
                    "accuracy": run.metrics["accuracy"],
                    "samples_per_s": sum(steady) / len(steady),
                    "epoch_seconds": [r["epoch_seconds"] for r in rows],
                }
            )
        report["jobs"] = jobs
    ray.shutdown()

    precision_out = Path(tempfile.mkstemp(suffix=".json")[1])
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "precision.py"), "--out", str(precision_out)], check=True
    )
    report["precision"] = json.loads(precision_out.read_text())

    print(f"GPUs: {', '.join(report['gpus'])}; NCCL all-reduce over {gpus} rank(s): ok")
    base = jobs[0]["samples_per_s"]
    print("| job | test accuracy | train samples/s | vs ddp fp32 |")
    print("| --- | ---: | ---: | ---: |")
    for j in jobs:
        print(
            f"| {j['job']} | {j['accuracy']:.4f} | {j['samples_per_s']:,.0f} "
            f"| {j['samples_per_s'] / base:.2f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
