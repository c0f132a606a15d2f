"""What runs the model behind a :class:`~raydl.predict.Predictor`: a backend takes
preprocessed input ``x`` (a numpy batch) and returns named per-row outputs; the
Predictor's pre- and post-processing stay the same whichever backend runs.

Outputs, by kind of model:

- classification: ``{"logits": (B, classes)}``; regression: ``{"output": (B,)}`` (the
  scaled target the model predicts);
- a model with its own objective (the VAE): ``{"loss": (B,), "reconstruction_error": (B,)}``;
- a language model: ``{"loss": (B,), "tokens": (B,)}`` (mean next-token loss over each
  row's predicted tokens, and how many there were).

The run directory's ``model/`` folder names the model that serving and batch inference
use (written by the compression stage when it selects one; absent until then):

``model/selected.json``::

    {"format": "torch" | "torch-int8" | "onnx",
     "files": {...},          # paths relative to model/, by format:
                              #   torch:      {"config": "model.json", "weights": "model.safetensors"}
                              #   torch-int8: {"module": "model.int8.pt"}  (a whole pickled nn.Module)
                              #   onnx:       {"onnx": "model.onnx"}       (input "x", first output = logits)
     "source": "checkpoints/best",   # where it came from (informational)
     "metrics": {...}}               # its test metrics (informational)

``Predictor.from_run(run, model="selected")`` loads it, or the best checkpoint when
there is no ``model/selected.json``. Nothing here imports Ray.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from raydl.errors import RaydlError

SELECTED = "selected.json"
FORMATS = ("torch", "torch-int8", "onnx")


class Backend(Protocol):
    """Preprocessed input → named per-row outputs (see the module's docstring)."""

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]: ...


class TorchBackend:
    """A torch module (on CPU unless moved), in eval mode, without autograd."""

    def __init__(self, model: Any, task: str) -> None:
        import torch

        from raydl.train import objectives

        self.model, self.task = model.eval(), task
        self._torch = torch
        self.own_objective = objectives.has_own_objective(model)  # answers with per-row scores
        self.device = next((p.device for p in model.parameters()), torch.device("cpu"))

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        torch = self._torch
        from raydl.train import objectives

        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
            if self.own_objective:
                scores = objectives.row_objective(self.model, t)
                return {k: v.double().cpu().numpy() for k, v in scores.items()}
            if self.task == "language_modeling":
                loss, tokens = objectives.row_next_token_loss(self.model, t)
                return {"loss": loss.double().cpu().numpy(), "tokens": tokens.cpu().numpy()}
            out = self.model(t).float().cpu()
            if self.task == "regression":
                return {"output": out.reshape(len(x), -1)[:, 0].numpy()}
            return {"logits": out.numpy()}


class OnnxBackend:
    """An ONNX model on onnxruntime's CPU provider (classification or regression)."""

    def __init__(self, path: Path, task: str) -> None:
        if task not in ("classification", "regression"):
            raise RaydlError(f"{path}: an ONNX model serves classification or regression, not {task}")
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise RaydlError(f"{path}: an ONNX model needs onnxruntime (pip install onnxruntime)") from None
        self.path, self.task = path, task
        self._open(path.read_bytes())

    def _open(self, model: bytes) -> None:
        import onnxruntime as ort

        self.model = model
        self.session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    # a session does not pickle: batch inference ships the model's bytes to its actors
    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "task": self.task, "model": self.model}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self.task = state["path"], state["task"]
        self._open(state["model"])

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        out = np.asarray(self.session.run(None, {self.input: x})[0], dtype=np.float32)
        if self.task == "regression":
            return {"output": out.reshape(len(x), -1)[:, 0]}
        return {"logits": out}


def read_selected(model_dir: Path) -> dict[str, Any]:
    """``model/selected.json``, checked.

    Raises:
        RaydlError: it is not valid JSON, names an unknown format, or a file that is missing.
    """
    path = model_dir / SELECTED
    try:
        selected = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RaydlError(f"{path}: not a readable selected-model file ({e})") from None
    fmt = selected.get("format")
    if fmt not in FORMATS:
        raise RaydlError(f"{path}: format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    files = selected.get("files") or {}
    needed = {"torch": ("config", "weights"), "torch-int8": ("module",), "onnx": ("onnx",)}[fmt]
    for key in needed:
        if key not in files:
            raise RaydlError(f"{path}: a {fmt} model names files.{key}")
        if not (model_dir / files[key]).is_file():
            raise RaydlError(f"{path}: files.{key} is {files[key]!r}, which is not in {model_dir}")
    return selected


def write_selected(
    model_dir: Path, fmt: str, files: dict[str, str], source: str, metrics: dict[str, Any] | None = None
) -> Path:
    """Write ``model/selected.json`` (the compression stage's choice): ``files`` are paths
    relative to ``model_dir`` that must already be there.

    Raises:
        RaydlError: an unknown format or a missing file.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / SELECTED
    body = {"format": fmt, "files": files, "source": source, "metrics": metrics or {}}
    path.write_text(json.dumps(body, indent=2) + "\n")
    read_selected(model_dir)  # the same checks a reader makes
    return path


def load_backend(where: Path, task: str) -> tuple[Backend, dict[str, Any]]:
    """The backend of a model: a checkpoint folder (``model.json`` + weights), a folder
    with ``selected.json``, an ``.onnx`` file, or a whole pickled torch module (``.pt``).
    Returns it with a description ``{"format", "path"}``.

    Raises:
        RaydlError: nothing loadable there.
    """
    if where.is_dir() and (where / SELECTED).is_file():
        selected = read_selected(where)
        fmt, files = selected["format"], selected["files"]
        if fmt == "torch":
            backend, path = _checkpoint(where, task, files["config"], files["weights"]), where
        elif fmt == "torch-int8":
            path = where / files["module"]
            backend = _module(path, task)
        else:
            path = where / files["onnx"]
            backend = OnnxBackend(path, task)
        return backend, {"format": fmt, "path": str(path)}
    if where.is_dir() and (where / "model.json").is_file():
        return _checkpoint(where, task), {"format": "torch", "path": str(where)}
    if where.is_file() and where.suffix == ".onnx":
        return OnnxBackend(where, task), {"format": "onnx", "path": str(where)}
    if where.is_file() and where.suffix in (".pt", ".pth"):
        return _module(where, task), {"format": "torch-int8", "path": str(where)}
    raise RaydlError(
        f"{where}: not a model: expected a checkpoint folder (model.json), a folder with {SELECTED}, "
        "an .onnx file or a torch module (.pt)"
    )


def _checkpoint(
    d: Path, task: str, config: str = "model.json", weights: str = "model.safetensors"
) -> Backend:
    from raydl.train.checkpoint import load_model_dir

    return TorchBackend(load_model_dir(d, config=config, weights=weights), task)


def _module(path: Path, task: str) -> Backend:
    import torch

    module = torch.load(path, weights_only=False, map_location="cpu")  # a whole module, the run's own
    if not isinstance(module, torch.nn.Module):
        raise RaydlError(f"{path}: holds a {type(module).__name__}, not a torch module")
    return TorchBackend(module, task)
