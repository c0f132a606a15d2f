"""A short fine-tune of a structurally pruned candidate on Ray Train, through the same
training loop and spec fields as the run (``train:``), from the pruned weights: each
worker builds the architecture, gives it the pruned shapes and loads the weights
(``model.pretrained.path``). The run's own checkpoints and metrics are left alone: the
fine-tune writes under ``compress/finetune/<candidate>/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from raydl.backends import TorchBackend, apply_recipe
from raydl.checks import apply_overrides, validate_spec
from raydl.compress.candidates import Candidate, torch_saver
from raydl.data.prepare import PreparedData
from raydl.rundir import RunDir
from raydl.spec import JobSpec
from raydl.train.checkpoint import build_from_config
from raydl.train.trainer import fit


def finetune(
    spec: JobSpec,
    prepared: PreparedData,
    run_dir: RunDir,
    cand: Candidate,
    config: dict[str, Any],
    epochs: int,
) -> Candidate:
    """``cand`` trained ``epochs`` more epochs (the run's optimizer, lr and batch size;
    no warm-up), as the candidate ``<name>+ft``."""
    work = RunDir(run_dir.path / "compress" / "finetune" / cand.name)
    start = work.path / "start"
    files = cand.save(start)
    raw = apply_overrides(
        json.loads(json.dumps(spec.model_dump(mode="json"))),
        [
            f"train.epochs={epochs}",
            "train.scheduler.warmup_epochs=0",
            "train.early_stopping=null",
            f"model.pretrained.path={json.dumps(str(start / files['weights']))}",
            "tune=null",
            "compress=null",
            "evaluate.cross_validation=null",
        ],
    )
    shapes = cand.recipe["shapes"]
    result = fit(validate_spec(raw), prepared, work, shapes=shapes)
    model = apply_recipe(build_from_config(config), cand.recipe)
    model.load_state_dict(load_file(str(Path(result.best_checkpoint) / "model.safetensors")))
    return Candidate(
        f"{cand.name}+ft",
        cand.fmt,
        TorchBackend(model.eval(), cand.backend.task),  # type: ignore[attr-defined]
        cand.params,
        torch_saver(model, config, "torch"),
        cand.recipe,
        cand.notes | {"finetune_epochs": epochs},
    )
