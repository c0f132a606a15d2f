"""What goes over the wire: raydl's own ``/predict`` body, the Open Inference Protocol v2
(KServe/Triton/MLServer REST) and their translation to and from Predictor rows.

Ray-free and FastAPI-free: the request is checked here and every problem becomes a
:class:`BadRequest` with the status and a message naming the row (or input) and the
problem, so that nothing a client sends reaches the model unchecked.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from raydl.errors import RequestError, RowProblem

ABSTAIN = "abstain"

# v2 datatypes → numpy (BYTES: strings, base64 images)
V2_DTYPES = {
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": object,
}


class BadRequest(Exception):
    """A request the server refuses: the HTTP status, a message, and the row problems."""

    def __init__(self, status: int, message: str, problems: list[RowProblem] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.problems = status, message, problems or []

    @classmethod
    def from_request_error(cls, e: RequestError) -> BadRequest:
        return cls(422, "; ".join(e.lines()), e.problems)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message}
        if self.problems:
            out["problems"] = [p.as_dict() for p in self.problems]
        return out


# ------------------------------------------------------------------ response models (OpenAPI)
class ModelInfo(BaseModel):
    name: str = Field(description="The model's name (the job's name).")
    version: str = Field(description="The run directory's name: one version per training run.")
    run: str = Field(description="Where the run directory is.")


class TopK(BaseModel):
    label: Any = Field(description="A class, as the data names it.")
    probability: float = Field(description="Its probability.")


class Prediction(BaseModel):
    label: Any = Field(None, description="The class (classification); 'abstain' under the threshold.")
    probability: float | None = Field(None, description="The top class's probability.")
    probabilities: dict[str, float] | None = Field(None, description="Probability by class.")
    top_k: list[TopK] | None = Field(None, description="The most probable classes, best first.")
    abstained: bool | None = Field(None, description="True when the top probability is under the threshold.")
    value: float | None = Field(None, description="The prediction in the target's units (regression).")


class PredictResponse(BaseModel):
    predictions: list[dict[str, Any]] = Field(description="One answer per row, in request order.")
    model: ModelInfo


class ErrorResponse(BaseModel):
    error: str = Field(description="What is wrong, naming the row and field.")
    problems: list[dict[str, Any]] | None = Field(
        None, description="Each bad row: row, field, value, reason."
    )


# ------------------------------------------------------------------ request schema (OpenAPI)
def row_schema(input_schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of one row, from the Predictor's input schema."""
    props: dict[str, Any] = {}
    for f in input_schema["fields"]:
        kind = f["kind"]
        if kind == "number":
            s: dict[str, Any] = {"type": "number"}
        elif kind == "category":
            s = {"description": f"one of {f.get('categories', [])}"}
        elif kind == "text":
            s = {"type": "string"}
        elif kind == "image":
            s = {
                "type": "string",
                "format": "byte",
                "description": f"base64 PNG/JPEG, {f['shape']} {f['mode']}",
            }
        else:
            s = {"type": "array", "description": f"a nested list of numbers of shape {f['shape']}"}
        if not f.get("required", True):
            s = {"anyOf": [s, {"type": "null"}], "description": f"a gap is filled with {f.get('fill')!r}"}
        props[f["name"]] = s
    required = [f["name"] for f in input_schema["fields"] if f.get("required", True)]
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def predict_request_schema(input_schema: dict[str, Any]) -> dict[str, Any]:
    row = row_schema(input_schema)
    return {
        "oneOf": [
            {
                "type": "object",
                "properties": {"instances": {"type": "array", "items": row, "minItems": 1}},
                "required": ["instances"],
                "additionalProperties": False,
            },
            row,
        ]
    }


def v2_infer_request_schema(input_schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a v2 inference request: a tensor per input field (its name, shape,
    datatype and flat or nested data), an optional id and the outputs wanted."""
    tensor = {
        "type": "object",
        "properties": {
            "name": {"enum": [f["name"] for f in input_schema["fields"]]},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
            "datatype": {"enum": sorted(V2_DTYPES)},
            "data": {"type": "array"},
        },
        "required": ["name", "shape", "datatype", "data"],
    }
    wanted = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    return {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "items": tensor, "minItems": 1},
            "outputs": {"type": "array", "items": wanted},
        },
        "required": ["inputs"],
    }


# ------------------------------------------------------------------ parsing
def parse_json(body: bytes, limit: int) -> Any:
    """The request body as JSON.

    Raises:
        BadRequest: 413 past ``limit`` bytes; 400 for a body that is not JSON.
    """
    if len(body) > limit:
        raise BadRequest(413, f"request body of {len(body)} bytes is larger than the limit of {limit} bytes")
    if not body:
        raise BadRequest(400, "empty request body; send JSON")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(400, f"malformed JSON: {e}") from None


def predict_rows(payload: Any) -> tuple[list[dict[str, Any]], bool]:
    """``/predict``'s rows, and whether one row (not a list) was sent.

    Raises:
        BadRequest: not an object, ``instances`` not a non-empty list of objects.
    """
    if not isinstance(payload, dict):
        raise BadRequest(
            400, f"expected a JSON object (one row, or {{'instances': [rows]}}), got {_kind(payload)}"
        )
    if "instances" not in payload:
        return [payload], True
    instances = payload["instances"]
    extra = sorted(set(payload) - {"instances"})
    if extra:
        raise BadRequest(400, f"unknown key(s) {extra} beside 'instances'")
    if not isinstance(instances, list):
        raise BadRequest(400, f"'instances' must be a list of rows, got {_kind(instances)}")
    if not instances:
        raise BadRequest(400, "'instances' is empty: no rows given")
    bad = [
        RowProblem(i, None, None, f"expected an object of fields, got {_kind(r)}")
        for i, r in enumerate(instances)
        if not isinstance(r, dict)
    ]
    if bad:
        raise BadRequest(422, "; ".join(str(p) for p in bad), bad)
    return instances, False


def decode_images(rows: list[dict[str, Any]], input_schema: dict[str, Any]) -> list[RowProblem]:
    """A request's image fields, base64 text or a ``data:`` URI, as their bytes (in place);
    a problem per value that is neither.

    The Predictor also takes a file path for an image (``raydl predict`` on local files); a
    server must not: it would open whatever path a client names, and answer whether the
    file exists. Decoded here, the Predictor only sees bytes."""
    names = [f["name"] for f in input_schema["fields"] if f["kind"] == "image"]
    problems = []
    for i, row in enumerate(rows):
        for name in names:
            value = row.get(name)
            if not isinstance(value, str):
                continue  # absent (named by missing_fields) or not text (the Predictor says why)
            text = value.strip()
            if text.startswith("data:"):
                text = text.partition(",")[2]
            try:
                row[name] = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                reason = "expected base64 PNG/JPEG data or a data: URI (a server reads no files)"
                problems.append(RowProblem(i, name, value, reason))
    return problems


def missing_fields(rows: list[dict[str, Any]], input_schema: dict[str, Any]) -> list[RowProblem]:
    """A problem per row that lacks a field training never filled."""
    required = [f["name"] for f in input_schema["fields"] if f.get("required", True)]
    return [
        RowProblem(i, name, None, "missing field; the model needs it")
        for i, row in enumerate(rows)
        for name in required
        if name not in row
    ]


def v2_rows(payload: Any, input_schema: dict[str, Any]) -> list[dict[str, Any]]:
    """An Open Inference Protocol v2 request's ``inputs`` (one tensor per field, the first
    dimension the rows) → Predictor rows.

    Raises:
        BadRequest: a malformed request, a tensor whose data does not fit its shape or
            datatype, an unknown input, or inputs that disagree on the number of rows.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list) or not payload["inputs"]:
        raise BadRequest(400, "expected {'inputs': [{'name', 'shape', 'datatype', 'data'}, ...]}")
    fields = {f["name"]: f for f in input_schema["fields"]}
    columns: dict[str, np.ndarray] = {}
    for i, t in enumerate(payload["inputs"]):
        where = f"inputs[{i}]"
        if not isinstance(t, dict):
            raise BadRequest(400, f"{where}: expected an object, got {_kind(t)}")
        name, shape, dtype, data = t.get("name"), t.get("shape"), t.get("datatype"), t.get("data")
        if name not in fields:
            raise BadRequest(400, f"{where}: unknown input {name!r}; the model reads {sorted(fields)}")
        where = f"input {name!r}"
        if dtype not in V2_DTYPES:
            raise BadRequest(400, f"{where}: datatype {dtype!r} is not one of {sorted(V2_DTYPES)}")
        if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise BadRequest(400, f"{where}: shape must be a non-empty list of sizes, got {shape!r}")
        if not isinstance(data, list):
            raise BadRequest(400, f"{where}: data must be a list, got {_kind(data)}")
        try:
            flat: np.ndarray = np.asarray(data, dtype=V2_DTYPES[dtype]).reshape(-1)
        except (ValueError, TypeError) as e:
            raise BadRequest(400, f"{where}: data is not {dtype} ({e})") from None
        if flat.size != math.prod(shape):
            raise BadRequest(400, f"{where}: {flat.size} values do not fill shape {shape}")
        arr: np.ndarray = flat.reshape(shape)
        kind = fields[name]["kind"]
        if kind != "tensor" and kind != "image" and arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]  # [N, 1] scalars
        columns[str(name)] = arr
    sizes = {k: len(v) for k, v in columns.items()}
    if len(set(sizes.values())) > 1:
        raise BadRequest(400, f"inputs disagree on the number of rows: {sizes}")
    n = next(iter(sizes.values()))
    if n == 0:
        raise BadRequest(400, "no rows given (the first dimension is 0)")
    return [{k: _plain(v[i]) for k, v in columns.items()} for i in range(n)]


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v.item() if isinstance(v, np.generic) else v


def _kind(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(v), f"a {type(v).__name__}"
    )


# ------------------------------------------------------------------ v2 metadata and outputs
def v2_datatype(field: dict[str, Any]) -> tuple[str, list[int]]:
    """A field's v2 datatype and shape (the first dimension, -1, is the rows)."""
    kind = field["kind"]
    if kind == "number":
        return "FP64", [-1]
    if kind == "tensor":
        return "FP32", [-1, *field["shape"]]
    return "BYTES", [-1]  # text, categories, base64 images


def v2_metadata(
    name: str, version: str, input_schema: dict[str, Any], outputs: list[dict[str, Any]]
) -> dict[str, Any]:
    inputs = []
    for f in input_schema["fields"]:
        dtype, shape = v2_datatype(f)
        inputs.append({"name": f["name"], "datatype": dtype, "shape": shape})
    return {"name": name, "versions": [version], "platform": "raydl", "inputs": inputs, "outputs": outputs}


def v2_output_specs(task: str, classes: list[Any] | None, threshold: float | None) -> list[dict[str, Any]]:
    if task == "classification":
        ints = (
            all(isinstance(c, int) and not isinstance(c, bool) for c in classes or []) and threshold is None
        )
        return [
            {"name": "label", "datatype": "INT64" if ints else "BYTES", "shape": [-1]},
            {"name": "probability", "datatype": "FP32", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(classes or [])]},
        ]
    if task == "regression":
        return [{"name": "value", "datatype": "FP64", "shape": [-1]}]
    return []


def v2_outputs(
    answers: list[dict[str, Any]], specs: list[dict[str, Any]], classes: list[Any] | None, wanted: Any
) -> list[dict[str, Any]]:
    """Answers → v2 output tensors (those ``wanted`` asks for, by name; all by default)."""
    names = None
    if isinstance(wanted, list) and wanted:
        names = {o.get("name") for o in wanted if isinstance(o, dict)}
        unknown = names - {s["name"] for s in specs}
        if unknown:
            raise BadRequest(
                400,
                f"unknown output(s) {sorted(map(str, unknown))}; "
                f"the model gives {[s['name'] for s in specs]}",
            )
    n = len(answers)
    out = []
    for s in specs:
        if names is not None and s["name"] not in names:
            continue
        if s["name"] == "probabilities":
            keys = [str(c) for c in classes or []]
            data: list[Any] = [a["probabilities"][k] for a in answers for k in keys]
            shape = [n, len(keys)]
        else:
            data = [a[s["name"]] for a in answers]
            data = [str(v) for v in data] if s["datatype"] == "BYTES" else data
            shape = [n]
        out.append({"name": s["name"], "datatype": s["datatype"], "shape": shape, "data": data})
    return out


def apply_threshold(answers: list[dict[str, Any]], threshold: float | None) -> int:
    """Answers whose top probability is under ``threshold`` become ``abstain`` (their
    probabilities kept); returns how many abstained."""
    if threshold is None:
        return 0
    n = 0
    for a in answers:
        low = a.get("probability") is not None and a["probability"] < threshold
        a["abstained"] = bool(low)
        if low:
            a["label"] = ABSTAIN
            n += 1
    return n
