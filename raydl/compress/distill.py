"""Distillation into a light student, trained on Ray Train through the same training
loop and ``train:`` fields as the run: the student is ``compress.distill.student`` in
place of ``model:``, its loss :class:`raydl.train.distill.DistillLoss` with the run's
best checkpoint as teacher (loaded inside each worker). With ``baseline``, the same
student also trains alone (labels only, the same epochs and seed) as ``student_alone``:
a row that shows what the teacher added, never served. Both write under
``compress/distill/<name>/``; the run's own checkpoints and metrics are left alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from raydl.backends import TorchBackend
from raydl.checks import validate_spec
from raydl.compress.candidates import Candidate, torch_saver
from raydl.data.prepare import PreparedData
from raydl.rundir import RunDir
from raydl.spec import JobSpec
from raydl.spec.compress import DistillSpec
from raydl.train.checkpoint import CONFIG, load_model_dir
from raydl.train.trainer import fit

DISTILLED, ALONE = "distilled", "student_alone"


def student_spec(spec: JobSpec, d: DistillSpec) -> JobSpec:
    """The run's spec with the student as its model, trained ``d.epochs`` (default
    ``train.epochs``) epochs; no search, compression or cross-validation of its own."""
    raw = json.loads(json.dumps(spec.model_dump(mode="json")))
    raw["model"] = d.student.model_dump(mode="json")
    raw["train"]["epochs"] = d.epochs or spec.train.epochs
    raw.update(tune=None, compress=None)
    raw["evaluate"]["cross_validation"] = None
    return validate_spec(raw)


def students(
    spec: JobSpec, prepared: PreparedData, run_dir: RunDir, teacher: Path, d: DistillSpec
) -> list[Candidate]:
    """The ``distilled`` candidate (and ``student_alone`` when ``d.baseline``)."""
    student = student_spec(spec, d)
    teach = {"teacher": str(teacher), "temperature": d.temperature, "alpha": d.alpha}
    out = [_train(student, prepared, run_dir, DISTILLED, teach, d)]
    if d.baseline:
        out.append(_train(student, prepared, run_dir, ALONE, None, d))
    return out


def _train(
    student: JobSpec,
    prepared: PreparedData,
    run_dir: RunDir,
    name: str,
    teach: dict[str, Any] | None,
    d: DistillSpec,
) -> Candidate:
    result = fit(student, prepared, RunDir(run_dir.path / "compress" / "distill" / name), distill=teach)
    best = Path(result.best_checkpoint)
    model = load_model_dir(best)
    config = json.loads((best / CONFIG).read_text())
    notes: dict[str, Any] = {"student": d.student.arch, "epochs": student.train.epochs}
    if teach is None:
        notes["baseline"] = True  # shown beside the distilled student, never served
    else:
        notes |= {"temperature": d.temperature, "alpha": d.alpha}
    return Candidate(
        name,
        "torch",
        TorchBackend(model, student.data.task),
        sum(p.numel() for p in model.parameters()),
        torch_saver(model, config, "torch"),
        notes=notes,
    )
