"""The small interface every compression technique answers with: a :class:`Candidate`
is a backend a :class:`~raydl.predict.Predictor` can run, and it can save itself into a
folder in one of the formats :mod:`raydl.backends` loads (no pickled modules)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raydl.backends import Backend, load_backend


@dataclass
class Candidate:
    """One compressed (or the original) model.

    Attributes:
        name: its row in the candidates table.
        fmt: the ``model/selected.json`` format it saves as (torch, torch-int8, onnx).
        backend: runs preprocessed input (what is measured).
        params: its parameter count.
        save: writes its files into a folder; returns ``files`` for ``selected.json``.
        recipe: what rebuilds its architecture from ``model.json`` (torch formats).
        notes: technique-specific facts for the table (e.g. the ONNX checks).
    """

    name: str
    fmt: str
    backend: Backend
    params: int
    save: Callable[[Path], dict[str, str]]
    recipe: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


def torch_saver(model: Any, config: dict[str, Any], fmt: str) -> Callable[[Path], dict[str, str]]:
    """Save a torch candidate as its config and a state dict: safetensors for plain
    tensors (fp32/fp16/bf16), ``torch.save`` of the state dict for quantized tensors
    (read back with ``weights_only=True``)."""

    def save(d: Path) -> dict[str, str]:
        import torch

        d.mkdir(parents=True, exist_ok=True)
        (d / "model.json").write_text(json.dumps(config, indent=2))
        if fmt == "torch":
            from safetensors.torch import save_file

            state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
            save_file(state, str(d / "model.safetensors"))
            return {"config": "model.json", "weights": "model.safetensors"}
        torch.save(model.state_dict(), d / "model.int8.pt")
        return {"config": "model.json", "weights": "model.int8.pt"}

    return save


def onnx_saver(path: Path) -> Callable[[Path], dict[str, str]]:
    """Copy an ONNX model (and its external weights, ``<name>.data``) as ``model.onnx``."""

    def save(d: Path) -> dict[str, str]:
        d.mkdir(parents=True, exist_ok=True)
        if path.resolve() != (d / "model.onnx").resolve():
            shutil.copyfile(path, d / "model.onnx")
            data = path.parent / (path.name + ".data")
            if data.is_file():
                # the graph names its data file: keep the name it was exported with
                shutil.copyfile(data, d / data.name)
        return {"onnx": "model.onnx"}

    return save


def files_size(d: Path) -> int:
    """Bytes of every file in a saved candidate's folder."""
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())


def reload(d: Path, fmt: str, files: dict[str, str], recipe: dict[str, Any], task: str) -> Backend:
    """The backend of a saved candidate, loaded the way serving loads it."""
    from raydl.backends import write_selected

    write_selected(d, fmt, files, source=str(d), recipe=recipe)
    return load_backend(d, task)[0]
