"""The compression stage over a run directory: build the candidates the spec asks for,
measure each alike, gate them, write ``compress/candidates.json`` and the selected
model under ``model/`` (then ``Predictor.from_run(run)`` serves it)."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from raydl.backends import TorchBackend, write_selected
from raydl.checks import compress_metric, load_spec
from raydl.compress import onnx_export, prune, quantize, robust
from raydl.compress.candidates import Candidate, files_size, reload, torch_saver
from raydl.compress.gate import ORIGINAL, apply_gate
from raydl.compress.measure import measure, outputs, pinned_threads
from raydl.compress.plot import write_section
from raydl.data.preprocess import Preprocessor
from raydl.errors import RaydlError
from raydl.progress import Display
from raydl.rundir import RunDir
from raydl.spec import JobSpec
from raydl.spec.compress import CompressSpec
from raydl.train.checkpoint import CONFIG, load_model_dir

if TYPE_CHECKING:
    from raydl.data.prepare import PreparedData

log = logging.getLogger(__name__)
CANDIDATES = "candidates.json"


def test_arrays(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """The preprocessed test split as numpy ``x``, ``y`` (it is small: one pass)."""
    xs, ys = [], []
    for batch in dataset.iter_batches(batch_size=1024, batch_format="numpy"):
        xs.append(batch["x"])
        ys.append(batch["y"])
    return np.concatenate(xs), np.concatenate(ys)


def train_sample(dataset: Any, rows: int) -> np.ndarray:
    """The first ``rows`` preprocessed train rows' ``x`` (the split is in its seeded,
    shuffled order): static int8's calibration."""
    xs = [b["x"] for b in dataset.limit(rows).iter_batches(batch_size=rows, batch_format="numpy")]
    return np.concatenate(xs)


def build_candidates(
    spec: CompressSpec,
    checkpoint: Path,
    pre: Preprocessor,
    example: np.ndarray,
    work: Path,
    tune: Callable[[Candidate, dict[str, Any]], Candidate] | None = None,
    calibration: np.ndarray | None = None,
) -> list[Candidate]:
    """The original fp32 model, then one candidate per technique, in the spec's order
    (``tune``: fine-tunes a structurally pruned one, added after it; ``calibration``:
    preprocessed train rows for static_int8).

    Raises:
        RaydlError: static_int8 without calibration rows.
    """
    config = json.loads((checkpoint / CONFIG).read_text())
    model = load_model_dir(checkpoint)
    task, threads = pre.task, spec.measure.threads
    params = sum(p.numel() for p in model.parameters())
    out = [
        Candidate(ORIGINAL, "torch", TorchBackend(model, task), params, torch_saver(model, config, "torch"))
    ]
    fp32_onnx: Path | None = None
    for technique in spec.techniques:
        if technique == "dynamic_int8":
            out.append(quantize.dynamic_int8(model, config, task))
        elif technique == "static_int8":
            if calibration is None:
                raise RaydlError("compress.techniques: static_int8 calibrates on train rows; none were given")
            out.append(quantize.static_int8(model, config, task, calibration))
        elif technique in quantize.HALF:
            out.append(quantize.half(model, config, task, technique))
        elif technique == "prune_l1":
            out.append(prune.l1_unstructured(model, config, task, spec.prune_amount))
        elif technique == "prune_structured":
            out.append(prune.structured(model, config, task, spec.prune_amount, example))
            if tune is not None:
                out.append(tune(out[-1], config))
        elif technique == "onnx":
            c = onnx_export.onnx_fp32(model, example, work / "onnx", task, threads)
            fp32_onnx = c.backend.path  # type: ignore[attr-defined]
            out.append(c)
        elif technique == "onnx_int8":
            if fp32_onnx is None:
                fp32_onnx = onnx_export.export(model, example, work / "onnx_fp32")
            out.append(onnx_export.onnx_int8(fp32_onnx, work / "onnx_int8", task, threads, params))
    return out


def compress(
    spec: JobSpec,
    run_dir: RunDir,
    pre: Preprocessor,
    x: np.ndarray,
    y: np.ndarray,
    display: Display | None = None,
    prepared: PreparedData | None = None,
) -> dict[str, Any]:
    """Run the stage on preprocessed test rows ``x``, ``y``; returns what
    ``compress/candidates.json`` holds. ``prepared``: the run's data, for a fine-tune
    (``compress.finetune_epochs``) or a distillation (``compress.distill``) on Ray Train, and
    static_int8's calibration rows."""
    c = spec.compress or CompressSpec()
    tune = None
    if c.finetune_epochs and "prune_structured" in c.techniques:
        if prepared is None:
            raise RaydlError("compress.finetune_epochs: a fine-tune needs the run's data (prepared)")
        from raydl.compress.finetune import finetune

        def tune(cand: Candidate, config: dict[str, Any]) -> Candidate:
            if display is not None:
                display.stage("fine-tune", f"{cand.name}: {c.finetune_epochs} epoch(s) on Ray Train")
            return finetune(spec, prepared, run_dir, cand, config, c.finetune_epochs)

    calibration = None
    if "static_int8" in c.techniques:
        if prepared is None:
            raise RaydlError(
                "compress.techniques: static_int8 calibrates on the run's train split (prepared)"
            )
        calibration = train_sample(prepared.datasets["train"], c.calibration_rows)
    metric = compress_metric(pre.task, c.select.metric)
    out_dir = run_dir.path / "compress"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    saved_root = out_dir / "candidates"
    rows: list[dict[str, Any]] = []
    saved: dict[str, tuple[Path, dict[str, str], Candidate]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        candidates = build_candidates(c, run_dir.best_checkpoint, pre, x, Path(tmp), tune, calibration)
        if c.distill is not None:
            candidates += _distill(spec, c, run_dir, display, prepared)
        _measure_all(candidates, c, pre, x, y, metric, saved_root, rows, saved)
    selected = apply_gate(rows, c.select, metric)
    base = rows[0]
    for row in rows:
        row["size_ratio"] = base["size_bytes"] / row["size_bytes"]
        row["speedup_b1"] = base["latency_p50_ms"] / row["latency_p50_ms"]
        row["speedup_b64"] = row["throughput_rows_s"] / base["throughput_rows_s"]
    import onnxruntime
    import torch

    result = {
        "metric": metric,
        "threads": c.measure.threads,
        "procedure": c.measure.model_dump(),
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        "test_rows": len(x),
        "robustness": None
        if c.robustness is None
        else c.robustness.model_dump() | {"rows": min(len(x), c.robustness.rows)},
        "selected": selected,
        "candidates": rows,
    }
    run_dir.write_json(out_dir / CANDIDATES, result)
    write_section(result, out_dir)
    model_dir = run_dir.selected_model
    if selected is None:
        if model_dir.exists():
            shutil.rmtree(model_dir)
    else:
        d, files, cand = saved[selected]
        row = next(r for r in rows if r["name"] == selected)
        # copied, described (selected.json) and sealed beside model/, then renamed over it:
        # a reader sees the old model or the new, never half of one
        run_dir.install(
            d,
            model_dir,
            lambda staging: write_selected(
                staging, cand.fmt, files, f"compress/candidates/{selected}", row["metrics"], cand.recipe
            ),
        )
    if display is not None:
        display.show(table(result))
    return result


def _distill(
    spec: JobSpec, c: CompressSpec, run_dir: RunDir, display: Display | None, prepared: PreparedData | None
) -> list[Candidate]:
    """The distilled student (and the student alone) trained on Ray Train."""
    d = c.distill
    assert d is not None
    if prepared is None:
        raise RaydlError("compress.distill: training a student needs the run's data (prepared)")
    from raydl.compress.distill import students

    if display is not None:
        epochs = d.epochs or spec.train.epochs
        alone = " and alone" if d.baseline else ""
        display.stage("distill", f"{d.student.arch} student{alone}: {epochs} epoch(s) on Ray Train")
    return students(spec, prepared, run_dir, run_dir.best_checkpoint, d)


def _measure_all(
    candidates: list[Candidate],
    c: CompressSpec,
    pre: Preprocessor,
    x: np.ndarray,
    y: np.ndarray,
    metric: str,
    saved_root: Path,
    rows: list[dict[str, Any]],
    saved: dict[str, tuple[Path, dict[str, str], Candidate]],
) -> None:
    """Save each candidate, load it back as serving does, and measure it (into ``rows``);
    with ``compress.robustness``, its FGSM/PGD accuracy too (see :mod:`raydl.compress.robust`)."""
    r = c.robustness
    with pinned_threads(c.measure.threads):
        reference = outputs(candidates[0], pre, x)
        transfer: dict[str, np.ndarray] = {}
        for cand in candidates:
            d = saved_root / cand.name
            files = cand.save(d)
            # measure what was saved, loaded the way serving loads it
            cand.backend = reload(d, cand.fmt, files, cand.recipe, pre.task)
            if cand.fmt == "onnx":
                cand.backend.threads = c.measure.threads  # type: ignore[attr-defined]
                cand.backend._open(cand.backend.model)  # type: ignore[attr-defined]
            (d / "selected.json").unlink()
            row = measure(cand, pre, x, y, [metric], reference, files_size(d), c.measure)
            row["recipe"] = cand.recipe
            if r is not None:
                xr, yr = x[: r.rows], y[: r.rows]
                original = cand is candidates[0]  # a torch fp32 model: the transfer rows are its own
                if original:
                    transfer = robust.attacks(cand.backend.model, xr, yr, r)  # type: ignore[attr-defined]
                row |= robust.robustness_row(cand, xr, yr, r, transfer, original)
            rows.append(row)
            saved[cand.name] = (d, files, cand)


def table(result: dict[str, Any]) -> Any:
    """The candidates as a rich table (ratios against the original fp32 model)."""
    from rich.table import Table

    metric, robustness = result["metric"], result.get("robustness")
    caption = None
    if robustness is not None:
        caption = (
            f"FGSM/PGD: accuracy under attack at ε={robustness['epsilon']} (scaled input units, "
            f"{robustness['pgd_steps']} PGD steps) on {robustness['rows']} test rows; transfer: "
            "int8/ONNX scored on the rows crafted against the original"
        )
    t = Table(
        title=f"compression candidates ({result['threads']} thread(s), {result['test_rows']} test rows)",
        caption=caption,
    )
    attacked = ("FGSM", "PGD", "attack") if robustness is not None else ()
    for col in (
        "",
        "candidate",
        metric,
        "agree",
        *attacked,
        "params",
        "size",
        "×smaller",
        "p50 ms",
        "p95 ms",
        "×b1",
        "×b64",
        "gate",
    ):
        t.add_column(col)
    for r in result["candidates"]:
        under_attack = (
            (f"{r['fgsm_accuracy']:.4f}", f"{r['pgd_accuracy']:.4f}", r["attack"])
            if robustness is not None
            else ()
        )
        t.add_row(
            "*" if r.get("selected") else "",
            r["name"],
            f"{r['metrics'][metric]:.4f}",
            f"{r['label_agreement']:.4f}" if "label_agreement" in r else "",
            *under_attack,
            f"{r['params']:,}",
            f"{r['size_bytes'] / 1024:.1f} KiB",
            f"{r['size_ratio']:.2f}",
            f"{r['latency_p50_ms']:.3f}",
            f"{r['latency_p95_ms']:.3f}",
            f"{r['speedup_b1']:.2f}",
            f"{r['speedup_b64']:.2f}",
            r["gate"],
        )
    return t


def compress_run(
    path: str | Path,
    overrides: list[str] | None = None,
    *,
    display: Display | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """``raydl compress RUN_DIR [overrides]``: the stage on a finished run, with its saved
    spec (``compress:`` from it, or the defaults; overrides apply to the whole spec).

    Raises:
        RaydlError: not a finished run, or its data changed since it ran.
    """
    from raydl.data.prepare import prepare_data
    from raydl.runtime import connect

    run_dir = RunDir.open(path)
    raw_overrides = list(overrides or [])
    spec = load_spec(run_dir.spec, raw_overrides, local_paths=False)
    if spec.compress is None:
        spec = load_spec(run_dir.spec, ["compress={}", *raw_overrides], local_paths=False)
    if not (run_dir.best_checkpoint / CONFIG).is_file():
        raise RaydlError(f"{path}: no best checkpoint; did training finish?")
    expected = run_dir.read_json(run_dir.manifest)["data_fingerprint"]
    pre = Preprocessor.load(run_dir.preprocessor)
    with connect(spec, verbose):
        prepared = prepare_data(spec, preprocessor=pre)
        if prepared.report["fingerprint"] != expected:
            raise RaydlError(
                f"data: the data changed since this run (fingerprint "
                f"{prepared.report['fingerprint']}, the run saw {expected})"
            )
        x, y = test_arrays(prepared.datasets["test"])
        return compress(spec, run_dir, pre, x, y, display, prepared)
