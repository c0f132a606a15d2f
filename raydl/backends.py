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
                              #   torch-int8: {"config": "model.json", "weights": "model.int8.pt"}
                              #               (a state dict, read with torch.load(weights_only=True))
                              #   onnx:       {"onnx": "model.onnx"}       (input "x", first output = logits;
                              #               its weights beside it in model.onnx.data)
     "recipe": {...},         # torch formats: what turns the architecture of model.json into the
                              # saved one before its weights load (see apply_recipe), e.g.
                              # {"quantize": "dynamic_int8"}, {"quantize": "static_int8"}
                              # (an FX-quantized CNN: its scales and zero points are in the
                              # state dict) or {"dtype": "float16"}
     "source": "checkpoints/best",   # where it came from (informational)
     "metrics": {...}}               # its test metrics (informational)

``Predictor.from_run(run, model="selected")`` loads it, or the best checkpoint when
there is no ``model/selected.json``. No pickled module is ever loaded: a model is rebuilt
from its config, the recipe re-applied, and only then are its weights read. Nothing here
imports Ray.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from raydl import artifacts
from raydl.errors import RaydlError

SELECTED = "selected.json"
FORMATS = ("torch", "torch-int8", "onnx")
RECIPE_KEYS = ("quantize", "dtype", "shapes")
DTYPES = ("float16", "bfloat16")
QUANTIZE = ("dynamic_int8", "static_int8")
# the module types dynamic int8 replaces by their quantized versions
DYNAMIC_INT8_TYPES = ("Linear", "LSTM", "GRU")


class Backend(Protocol):
    """Preprocessed input → named per-row outputs (see the module's docstring)."""

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]: ...


class TorchBackend:
    """A torch module (on CPU unless moved), in eval mode, without autograd.

    ``rebuild``: ``{"config": model.json, "recipe": ...}`` of a static int8 model, which is
    pickled (to Ray actors) as its state dict and rebuilt from these on the other side:
    torch.fx cannot unpickle a quantized GraphModule (it re-traces half-restored modules).
    """

    def __init__(self, model: Any, task: str, rebuild: dict[str, Any] | None = None) -> None:
        import torch

        from raydl.train import objectives

        self.model, self.task, self.rebuild = model.eval(), task, rebuild
        self._torch = torch
        self.own_objective = objectives.has_own_objective(model)  # answers with per-row scores
        first = next(iter(model.parameters()), None)
        self.device = first.device if first is not None else torch.device("cpu")
        # half-precision weights take half-precision input (floating input only: token ids stay)
        self.dtype = first.dtype if first is not None and first.is_floating_point() else None

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        torch = self._torch
        from raydl.train import objectives

        x = np.ascontiguousarray(x)
        if not x.flags.writeable:  # a zero-copy view of an Arrow block: torch may not share it
            x = x.copy()
        with torch.inference_mode():
            t = torch.from_numpy(x).to(self.device)
            if self.dtype is not None and t.is_floating_point() and t.dtype != self.dtype:
                t = t.to(self.dtype)
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

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self.rebuild is not None:
            import io

            buf = io.BytesIO()
            self._torch.save(self.model.state_dict(), buf)
            state["model"] = buf.getvalue()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if state.get("rebuild") is not None:
            import io

            from raydl.train.checkpoint import build_from_config

            cfg, recipe = state["rebuild"]["config"], state["rebuild"]["recipe"]
            model = apply_recipe(build_from_config(cfg), recipe, input_shape=cfg["input_shape"])
            model.load_state_dict(self._torch.load(io.BytesIO(state["model"]), weights_only=True))
            self.model = model.eval()


class OnnxBackend:
    """An ONNX model on onnxruntime's CPU provider (classification or regression)."""

    def __init__(self, path: Path, task: str, threads: int | None = None) -> None:
        if task not in ("classification", "regression"):
            raise RaydlError(f"{path}: an ONNX model serves classification or regression, not {task}")
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise RaydlError(f"{path}: an ONNX model needs onnxruntime (pip install onnxruntime)") from None
        self.path, self.task, self.threads = path, task, threads
        self._open(_onnx_bytes(path))

    def _open(self, model: bytes) -> None:
        import onnxruntime as ort

        self.model = model
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    # a session does not pickle: batch inference ships the model's bytes to its actors
    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "task": self.task, "model": self.model, "threads": self.threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self.task, self.threads = state["path"], state["task"], state.get("threads")
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
    needed = {"torch": ("config", "weights"), "torch-int8": ("config", "weights"), "onnx": ("onnx",)}[fmt]
    for key in needed:
        if key not in files:
            raise RaydlError(f"{path}: a {fmt} model names files.{key}")
        if not (model_dir / files[key]).is_file():
            raise RaydlError(f"{path}: files.{key} is {files[key]!r}, which is not in {model_dir}")
    recipe = selected.get("recipe") or {}
    unknown = sorted(set(recipe) - set(RECIPE_KEYS))
    if (
        unknown
        or recipe.get("dtype", "float16") not in DTYPES
        or recipe.get("quantize", "dynamic_int8") not in QUANTIZE
    ):
        raise RaydlError(
            f"{path}: recipe must hold quantize: {'|'.join(QUANTIZE)} and/or dtype: {'|'.join(DTYPES)}, "
            f"got {recipe}"
        )
    if fmt == "torch-int8" and recipe.get("quantize") not in QUANTIZE:
        raise RaydlError(f"{path}: a torch-int8 model names its recipe (quantize: {'|'.join(QUANTIZE)})")
    return selected


def write_selected(
    model_dir: Path,
    fmt: str,
    files: dict[str, str],
    source: str,
    metrics: dict[str, Any] | None = None,
    recipe: dict[str, Any] | None = None,
) -> Path:
    """Write ``model/selected.json`` (the compression stage's choice): ``files`` are paths
    relative to ``model_dir`` that must already be there.

    Raises:
        RaydlError: an unknown format or a missing file.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / SELECTED
    body = {"format": fmt, "files": files, "recipe": recipe or {}, "source": source, "metrics": metrics or {}}
    artifacts.write_json(path, body)
    read_selected(model_dir)  # the same checks a reader makes
    return path


def load_backend(where: Path, task: str) -> tuple[Backend, dict[str, Any]]:
    """The backend of a model: a checkpoint folder (``model.json`` + weights), a folder
    with ``selected.json``, or an ``.onnx`` file. Returns it with a description
    ``{"format", "path"}``.

    Raises:
        RaydlError: nothing loadable there, or a file that differs from its sha256.
    """
    if where.is_dir():
        artifacts.verify(where)
    if where.is_dir() and (where / SELECTED).is_file():
        selected = read_selected(where)
        fmt, files, recipe = selected["format"], selected["files"], selected.get("recipe") or {}
        if fmt in ("torch", "torch-int8"):
            backend, path = _checkpoint(where, task, files["config"], files["weights"], recipe), where
        else:
            path = where / files["onnx"]
            backend = OnnxBackend(path, task)
        return backend, {"format": fmt, "path": str(path)}
    if where.is_dir() and (where / "model.json").is_file():
        return _checkpoint(where, task), {"format": "torch", "path": str(where)}
    if where.is_file() and where.suffix == ".onnx":
        return OnnxBackend(where, task), {"format": "onnx", "path": str(where)}
    raise RaydlError(
        f"{where}: not a model: expected a checkpoint folder (model.json), a folder with {SELECTED} "
        "or an .onnx file (whole pickled torch modules are not loaded: they can run any code)"
    )


def apply_recipe(
    model: Any, recipe: dict[str, Any], calibration: np.ndarray | None = None, input_shape: Any = None
) -> Any:
    """The architecture a recipe describes, from the fp32 model (weights kept): dynamic
    int8 replaces Linear/LSTM/GRU by their quantized versions, static int8 quantizes a CNN's
    weights and activations (:func:`static_int8`), ``dtype`` casts the weights.
    The compression stage builds its candidates with this same function, so a saved
    model loads into exactly the modules it was measured as.

    Args:
        calibration: preprocessed rows ``(N, *input_shape)`` that set static int8's
            activation ranges; None when loading (the saved state dict holds them).
        input_shape: one row's shape (``model.json``'s), for static int8 without calibration.
    """
    import torch

    if "shapes" in recipe:
        from raydl.models.resize import resize

        resize(model, recipe["shapes"])
    if recipe.get("quantize") == "dynamic_int8":
        types = {getattr(torch.nn, t) for t in DYNAMIC_INT8_TYPES}
        # torch.ao.quantization is deprecated in 2.13 but is still the fast CPU int8 path
        # without torch.compile (MACHINE-NOTES: torchao's dynamic int8 ran 25x slower)
        model = torch.ao.quantization.quantize_dynamic(model.eval(), types, dtype=torch.qint8)
    if recipe.get("quantize") == "static_int8":
        model = static_int8(model, calibration, input_shape)
    if "dtype" in recipe:
        model = model.to(getattr(torch, recipe["dtype"]))
    return model.eval()


def static_int8(model: Any, calibration: np.ndarray | None, input_shape: Any = None) -> Any:
    """A CNN with int8 weights and activations: torch.ao FX graph mode on the x86 backend
    (Conv+BatchNorm+ReLU fused, per-channel weights, per-tensor activations; float in and
    out). ``calibration`` rows are run through its observers to set the activation scales;
    without them (loading a saved model) the scales are placeholders that the saved state
    dict replaces — the FX graph stores every scale and zero point as a buffer.

    Raises:
        RaydlError: neither calibration rows nor an input shape.
    """
    import warnings

    import torch
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if calibration is None and input_shape is None:
        raise RaydlError("static_int8: needs calibration rows or the model's input shape")
    torch.backends.quantized.engine = "x86"  # fbgemm + onednn kernels; the scales assume its ranges
    example = torch.zeros(1, *input_shape) if calibration is None else torch.from_numpy(calibration[:1])
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in 2.13 but is still the fast CPU int8 path
        # without torch.compile; its observers warn about reduce_range once per module,
        # uncalibrated ones (when loading) that they return placeholder scales, and each
        # quantized conv that quantized tensors are deprecated too
        warnings.filterwarnings("ignore", message=r"(?s).*torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r"(?s).*reduce_range will be deprecated")
        warnings.filterwarnings("ignore", message=r"(?s).*must run observer before calling calculate_qparams")
        warnings.filterwarnings("ignore", message=r"(?s).*quantized tensor creation functions")
        prepared = prepare_fx(model.eval(), get_default_qconfig_mapping("x86"), (example,))
        if calibration is not None:
            with torch.no_grad():
                for i in range(0, len(calibration), 64):
                    prepared(torch.from_numpy(np.ascontiguousarray(calibration[i : i + 64])))
        return convert_fx(prepared)


def _checkpoint(
    d: Path,
    task: str,
    config: str = "model.json",
    weights: str = "model.safetensors",
    recipe: dict[str, Any] | None = None,
) -> Backend:
    import torch

    from raydl.train.checkpoint import build_from_config, load_model_dir

    if not recipe:
        return TorchBackend(load_model_dir(d, config=config, weights=weights), task)
    cfg = json.loads((d / config).read_text())
    model = apply_recipe(build_from_config(cfg), recipe, input_shape=cfg["input_shape"])
    if weights.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(str(d / weights))
    else:
        import pickle

        # a state dict of tensors (quantized ones too): weights_only refuses anything else
        try:
            state = torch.load(d / weights, weights_only=True, map_location="cpu")
        except pickle.UnpicklingError as e:
            first = str(e).strip().splitlines()[0]
            raise RaydlError(
                f"{d / weights}: not a state dict of tensors, refused unread ({first})"
            ) from None
    model.load_state_dict(state)
    rebuild = {"config": cfg, "recipe": recipe} if recipe.get("quantize") == "static_int8" else None
    return TorchBackend(model.eval(), task, rebuild)


def _onnx_bytes(path: Path) -> bytes:
    """The model with its external weights (``model.onnx.data``) folded in, so that the
    session can be shipped to Ray actors as one blob."""
    if not (path.parent / (path.name + ".data")).exists():
        return path.read_bytes()
    import onnx

    return onnx.load(str(path), load_external_data=True).SerializeToString()
