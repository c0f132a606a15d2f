"""ONNX candidates: the fp32 model exported with a dynamic batch axis (torch 2.13's
dynamo exporter, which needs ``onnxscript``), checked with ``onnx.checker``, and its
dynamic int8 form from onnxruntime's quantization tools; both run in onnxruntime with
every graph optimization on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch.nn as nn

from raydl.backends import OnnxBackend
from raydl.compress.candidates import Candidate, onnx_saver
from raydl.errors import RaydlError


def _require(module: str, what: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise RaydlError(f"compress: {what} needs the Python package {module!r} (pip install {module})")


def export(model: nn.Module, example: np.ndarray, directory: Path) -> Path:
    """``directory/model.onnx`` (+ ``model.onnx.data``, its weights), input ``x`` with a
    dynamic batch axis, checked by ``onnx.checker``.

    Raises:
        RaydlError: onnx or onnxscript is missing.
    """
    import torch

    _require("onnxscript", "ONNX export (torch's exporter)")
    _require("onnx", "ONNX export")
    import onnx

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.onnx"
    x = torch.from_numpy(np.ascontiguousarray(example[:2]))
    torch.onnx.export(
        model.eval(),
        (x,),
        str(path),
        input_names=["x"],
        output_names=["out"],
        dynamic_shapes=({0: "batch"},),
        external_data=True,
    )
    onnx.checker.check_model(str(path))  # by path: the checker reads the external data too
    return path


def onnx_fp32(model: nn.Module, example: np.ndarray, directory: Path, task: str, threads: int) -> Candidate:
    path = export(model, example, directory)
    params = sum(p.numel() for p in model.parameters())
    return Candidate("onnx", "onnx", OnnxBackend(path, task, threads), params, onnx_saver(path))


def onnx_int8(fp32: Path, directory: Path, task: str, threads: int, params: int) -> Candidate:
    """onnxruntime's dynamic int8 (weights int8, activations quantized per batch) of an
    exported fp32 model.

    Raises:
        RaydlError: onnxruntime's quantization tools are missing.
    """
    _require("onnxruntime", "ONNX int8")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    directory.mkdir(parents=True, exist_ok=True)
    out = directory / "model.onnx"
    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8)
    return Candidate("onnx_int8", "onnx", OnnxBackend(out, task, threads), params, onnx_saver(out))
