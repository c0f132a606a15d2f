"""The model deployment: a run's :class:`~raydl.predict.Predictor` behind a FastAPI ingress
on Ray Serve.

Routes (under the application's route prefix):

- ``POST /predict`` — ``{"instances": [row, ...]}`` or one row → ``{"predictions",
  "model": {"name", "version", "run"}}``;
- the Open Inference Protocol v2 (KServe, Triton, MLServer): ``GET /v2/health/live``,
  ``/v2/health/ready``, ``GET /v2/models/{name}`` (inputs and outputs with datatypes and
  shapes), ``POST /v2/models/{name}/infer``;
- ``GET /healthz``, ``/metadata``, ``/drift``, and ``/docs`` + ``/openapi.json`` with the
  run's real row schema.

With ``serve.auth.token_env``, every route but ``/healthz`` and the v2 health probes needs
``Authorization: Bearer <token>`` (:mod:`raydl.serve.auth`); a missing or wrong one is 401.

Requests are checked before they reach the model (:mod:`raydl.serve.protocol`): every bad
one is a 4xx whose message names the row and the problem; more than ``max_request_rows``
rows (or ``max_request_bytes`` bytes) is 413. Concurrent requests share one
model call (``@serve.batch``); a prediction past ``request_timeout_s`` answers 504; a full
queue answers 503 (or 429) from Serve's proxy, at once.

No ``from __future__ import annotations`` here: Serve pickles the deployment class by value,
and FastAPI must see the route parameters' real types (``Request``), not their names.
"""

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import yaml
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve import Application

from raydl.errors import RaydlError, RequestError
from raydl.predict import Predictor
from raydl.serve import protocol
from raydl.serve.auth import OPEN_PATHS, BearerAuth, replica_token, required_token
from raydl.serve.config import DEPLOYMENT, deployment_options
from raydl.serve.drift import DriftMonitor, Reference
from raydl.serve.metrics import ServeMetrics
from raydl.serve.protocol import BadRequest
from raydl.serve.router import Router
from raydl.serve.source import local_run_dir
from raydl.spec.serve import ServeSpec

log = logging.getLogger(__name__)

api = FastAPI(
    openapi_url=None,  # served by the deployment, with the run's row schema
    docs_url=None,
    redoc_url=None,
    title="raydl model server",
    description="A raydl run's model: raydl's /predict and the Open Inference Protocol (v2) REST API.",
)
# the replica's token (serve.auth); none: every request passes
api.add_middleware(BearerAuth, token=replica_token)
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": protocol.ErrorResponse, "description": "Malformed request."},
    413: {"model": protocol.ErrorResponse, "description": "Request body or row count too large."},
    422: {"model": protocol.ErrorResponse, "description": "A row the model cannot use."},
    504: {"model": protocol.ErrorResponse, "description": "The prediction took too long."},
}
UNKNOWN_MODEL: dict[int | str, dict[str, Any]] = {
    404: {"model": protocol.ErrorResponse, "description": "No model of that name here."}
}
_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}}


def _number(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


_ERROR_REF = "#/components/schemas/ErrorResponse"


def _openapi(
    app: FastAPI, bodies: dict[str, dict[str, Any]], model: str, auth: bool = False
) -> dict[str, Any]:
    """The OpenAPI document with the run's real request bodies (``bodies``: by the end of a
    POST route's path) and the one model name the v2 routes know; with ``auth``, the bearer
    scheme on every operation but the probes."""
    doc = get_openapi(title=app.title, version="2", description=app.description, routes=app.routes)
    for path, item in doc["paths"].items():
        for end, body in bodies.items():
            if path.endswith(end) and "post" in item:
                item["post"]["requestBody"]["content"]["application/json"]["schema"] = body
        for operation in item.values():
            for param in operation.get("parameters", []):
                if param["name"] == "name" and param["in"] == "path":  # any other name: 404
                    param["schema"]["enum"] = [model]
        if auth and path not in OPEN_PATHS:
            for operation in item.values():
                operation["security"] = [{"bearer": []}]
                operation["responses"]["401"] = {
                    "description": "No bearer token, or a wrong one.",
                    "content": {"application/json": {"schema": {"$ref": _ERROR_REF}}},
                }
    if auth:
        doc.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return doc


class ModelReplica:
    """One replica: the Predictor loaded once, its metrics and its drift window. Deployed as
    :data:`ModelServer` (the FastAPI ingress) or, behind the router, as :data:`ModelVersion`
    (Serve allows one FastAPI ingress per application)."""

    def __init__(
        self, run_dir: str, serve_spec: dict[str, Any], job: str | None = None, version: str | None = None
    ) -> None:
        self.spec = ServeSpec.model_validate(serve_spec)
        self.token = required_token(self.spec.auth)  # this process's own environment's
        local = local_run_dir(run_dir, job)
        self.predictor = Predictor.from_run(local, model=self.spec.model)
        name = yaml.safe_load((local / "spec.yaml").read_text())["name"]
        # behind the router, ``version`` names this one (main, canary-1, shadow) in answers and metrics
        self.info = {"name": name, "version": version or local.name, "run": str(run_dir)}
        if self.spec.batching.enabled:
            batched: Any = self._batched  # @serve.batch's wrapper, not the plain method
            batched.set_max_batch_size(self.spec.batching.max_batch_size)
            batched.set_batch_wait_timeout_s(self.spec.batching.wait_s)
        self.metrics = ServeMetrics(name, self.info["version"])
        report = (
            json.loads((local / "data_report.json").read_text())
            if (local / "data_report.json").is_file()
            else {}
        )
        self.monitor = DriftMonitor(
            Reference.from_report(report, self.predictor.classes),
            window=self.spec.drift.window,
            p_value=self.spec.drift.p_value,
            psi=self.spec.drift.psi,
        )
        schema = self.predictor.input_schema
        # drift compares the data's own columns with the train statistics (by the spec's names)
        self._drift_fields = {
            f["name"]: f.get("spec_name", f["name"]) for f in schema["fields"] if f["kind"] == "number"
        }
        self._drift_categories = {
            f["name"]: f.get("spec_name", f["name"]) for f in schema["fields"] if f["kind"] == "category"
        }
        self.v2_specs = protocol.v2_output_specs(
            self.predictor.task, self.predictor.classes, self.spec.threshold
        )
        self._request_schemas = {
            "/predict": protocol.predict_request_schema(schema),
            "/infer": protocol.v2_infer_request_schema(schema),
        }
        self._openapi_doc: dict[str, Any] | None = None

    # ------------------------------------------------------------------ raydl's routes
    # (Serve serves a copy of ``api``, so the run's document is built per replica here)
    @api.get("/openapi.json", include_in_schema=False)
    async def openapi(self, request: Request) -> dict[str, Any]:
        if self._openapi_doc is None:
            self._openapi_doc = _openapi(
                request.app, self._request_schemas, self.info["name"], auth=self.token is not None
            )
        return self._openapi_doc

    @api.get("/docs", include_in_schema=False)
    async def docs(self, request: Request) -> Any:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(openapi_url=f"{root}/openapi.json", title=api.title)

    @api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/metadata")
    async def metadata(self) -> dict[str, Any]:
        """The model, its run, what a row holds, the labels and how it is served."""
        return {
            "model": self.info,
            "task": self.predictor.task,
            "input_schema": self.predictor.input_schema,
            "classes": self.predictor.classes,
            "outputs": self.predictor.output_columns,
            "selected": self.predictor.model,
            "threshold": self.spec.threshold,
            "batching": self.spec.batching.model_dump(),
        }

    @api.post("/predict", response_model=protocol.PredictResponse, responses=ERRORS, openapi_extra=_BODY)
    async def predict(self, request: Request) -> Any:
        """Answers for one row, or for ``{"instances": [rows]}``."""

        async def answer() -> tuple[dict[str, Any], int]:
            rows, _ = protocol.predict_rows(await self._json(request))
            answers = await self._answers(rows)
            return {"predictions": answers, "model": self.info}, len(rows)

        return await self._handle("/predict", answer)

    @api.get("/drift")
    async def drift(self) -> dict[str, Any]:
        """This replica's drift window against the training statistics."""
        report = self.monitor.report()
        self.metrics.drift_score(report["score"], report["drift"])
        return report

    # ------------------------------------------------------------------ Open Inference Protocol v2
    @api.get("/v2")
    async def v2_server(self) -> dict[str, Any]:
        return {"name": "raydl", "version": "2", "extensions": []}

    @api.get("/v2/health/live")
    async def v2_live(self) -> dict[str, bool]:
        return {"live": True}

    @api.get("/v2/health/ready")
    async def v2_ready(self) -> dict[str, bool]:
        return {"ready": True}

    @api.get("/v2/models/{name}/ready", responses=UNKNOWN_MODEL)
    async def v2_model_ready(self, name: str) -> Any:
        return self._unknown_model(name) or {"name": name, "ready": True}

    @api.get("/v2/models/{name}", responses=UNKNOWN_MODEL)
    async def v2_model(self, name: str) -> Any:
        return self._unknown_model(name) or protocol.v2_metadata(
            self.info["name"], self.info["version"], self.predictor.input_schema, self.v2_specs
        )

    @api.post("/v2/models/{name}/infer", responses={**ERRORS, **UNKNOWN_MODEL}, openapi_extra=_BODY)
    async def v2_infer(self, name: str, request: Request) -> Any:
        """An inference request: one tensor per input field, the first dimension the rows."""
        missing = self._unknown_model(name)
        if missing:
            return missing

        async def answer() -> tuple[dict[str, Any], int]:
            payload = await self._json(request)
            rows = protocol.v2_rows(payload, self.predictor.input_schema)
            answers = await self._answers(rows)
            outputs = protocol.v2_outputs(
                answers, self.v2_specs, self.predictor.classes, payload.get("outputs")
            )
            body = {
                "model_name": self.info["name"],
                "model_version": self.info["version"],
                "outputs": outputs,
            }
            if isinstance(payload.get("id"), str):
                body["id"] = payload["id"]
            return body, len(rows)

        return await self._handle("/v2/infer", answer)

    # ------------------------------------------------------------------ the path
    async def _json(self, request: Request) -> Any:
        size = request.headers.get("content-length")
        limit = self.spec.max_request_bytes
        if size and size.isdigit() and int(size) > limit:  # refused before reading it
            raise BadRequest(413, f"request body of {size} bytes is larger than the limit of {limit} bytes")
        return protocol.parse_json(await request.body(), limit)

    async def predict_body(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """``POST /predict`` for the router (:mod:`raydl.serve.router`): the request's body →
        (status, answer), through the same checks and metrics as the route."""

        async def answer() -> tuple[dict[str, Any], int]:
            if len(body) > self.spec.max_request_bytes:
                raise BadRequest(413, f"request body of {len(body)} bytes is larger than the limit")
            rows, _ = protocol.predict_rows(protocol.parse_json(body, self.spec.max_request_bytes))
            answers = await self._answers(rows)
            return {"predictions": answers, "model": self.info}, len(rows)

        return await self._respond("/predict", answer)

    async def _handle(self, route: str, answer: Callable[[], Awaitable[tuple[dict[str, Any], int]]]) -> Any:
        status, body = await self._respond(route, answer)
        return JSONResponse(body, status_code=status)

    async def _respond(
        self, route: str, answer: Callable[[], Awaitable[tuple[dict[str, Any], int]]]
    ) -> tuple[int, dict[str, Any]]:
        start = time.perf_counter()
        rows: int | None = None
        try:
            body, rows = await answer()
            status = 200
        except BadRequest as e:
            status, body = e.status, e.body()
        except Exception as e:  # a bug, not the client's: answered, and the replica stays up
            log.exception("%s failed", route)
            status, body = 500, {"error": f"internal error ({type(e).__name__})"}
        self.metrics.request(route, status, (time.perf_counter() - start) * 1e3, rows)
        return status, body

    async def _answers(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        limit = self.spec.max_request_rows
        if len(rows) > limit:
            raise BadRequest(
                413, f"{len(rows)} rows is more than max_request_rows ({limit}); split the request"
            )
        # a field that is not there at all: named here (preprocessing only sees gaps)
        problems = protocol.missing_fields(rows, self.predictor.input_schema)
        # images as bytes before the Predictor sees them: it would read a path as a file
        bad_images = protocol.decode_images(rows, self.predictor.input_schema)
        if bad_images:
            raise BadRequest.from_request_error(RequestError(problems + bad_images))
        try:
            prepared = self.predictor.preprocess(rows)
        except RequestError as e:
            raise BadRequest.from_request_error(e) from None
        problems += prepared.problems
        if problems:
            problems.sort(key=lambda p: (p.row if p.row is not None else -1, p.field or ""))
            raise BadRequest.from_request_error(RequestError(problems))
        timeout = self.spec.request_timeout_s
        try:
            outputs = await asyncio.wait_for(self._forward(prepared.x), timeout)
        except asyncio.TimeoutError:
            raise BadRequest(
                504, f"the prediction took longer than request_timeout_s ({timeout} s)"
            ) from None
        answers = self.predictor.answer(outputs)
        abstained = protocol.apply_threshold(answers, self.spec.threshold)
        labels = [a["label"] for a in answers if "label" in a]
        self.metrics.answered(labels, abstained)
        self._watch(rows, labels)
        return answers

    def _watch(self, rows: list[dict[str, Any]], labels: list[Any]) -> None:
        numeric = {}
        for field, spec_name in self._drift_fields.items():
            values = np.asarray([_number(r.get(field)) for r in rows], np.float64)
            numeric[spec_name] = values
        # raw values: the monitor reads them as the preprocessor does
        categorical = {
            spec_name: [r.get(field) for r in rows] for field, spec_name in self._drift_categories.items()
        }
        self.monitor.update(numeric, [x for x in labels if x != protocol.ABSTAIN], categorical)

    async def _forward(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self.spec.batching.enabled:
            return await self._batched(x)
        return await asyncio.to_thread(self.predictor.forward, x)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)  # set from the spec in __init__
    async def _batched(self, xs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Concurrent requests' rows → one forward pass → each request's outputs."""
        self.metrics.batch(len(xs))
        # the model runs off the event loop, so requests keep arriving for the next batch
        out = await asyncio.to_thread(self.predictor.forward, np.concatenate(xs))
        cuts = np.cumsum([len(x) for x in xs])[:-1]
        parts = {k: np.split(v, cuts) for k, v in out.items()}
        return [{k: parts[k][i] for k in out} for i in range(len(xs))]

    def _unknown_model(self, name: str) -> JSONResponse | None:
        if name == self.info["name"]:
            return None
        return JSONResponse({"error": f"unknown model {name!r}; this server has {self.info['name']!r}"}, 404)


ModelServer: Any = serve.deployment(name=DEPLOYMENT)(serve.ingress(api)(ModelReplica))
ModelVersion: Any = serve.deployment(name=DEPLOYMENT)(ModelReplica)


def application(run_dir: str, serve_spec: ServeSpec, *, job: str | None = None) -> "Application":
    """The Serve application for a run directory (a local path or URI; a runs folder: its
    newest run of ``job``); with ``versions`` or ``shadow``, those runs beside it behind the
    router (:mod:`raydl.serve.router`).

    Raises:
        RaydlError: ``serve.auth.token_env`` names a variable that is empty or not set here.
    """
    required_token(serve_spec.auth)  # at once, not as every replica fails to start
    if serve_spec.routed:
        return routed_application(run_dir, serve_spec, job=job)
    return ModelServer.options(**deployment_options(serve_spec)).bind(
        str(run_dir), serve_spec.model_dump(mode="json"), job
    )


def routed_application(run_dir: str, spec: ServeSpec, *, job: str | None = None) -> Application:
    """The main run, ``spec.versions`` and ``spec.shadow``, each its own model deployment
    (the main one named as the config file names it), behind the router."""
    args = spec.model_dump(mode="json")
    options = deployment_options(spec)

    def model(name: str, run: str, label: str) -> Any:
        return ModelVersion.options(name=name, **options).bind(
            str(run), args, job if run == run_dir else None, label
        )

    main_weight = 1 - sum(v.weight for v in spec.versions)
    versions = [("main", main_weight, model(DEPLOYMENT, run_dir, "main"))]
    for i, v in enumerate(spec.versions, 1):
        name = v.name or f"canary-{i}"
        versions.append((name, v.weight, model(f"{DEPLOYMENT}-{name}", v.run, name)))
    shadow = model(f"{DEPLOYMENT}-shadow", spec.shadow, "shadow") if spec.shadow else None
    ongoing = spec.ongoing_requests * (len(versions) + 1)
    return Router.options(  # type: ignore[attr-defined]
        max_ongoing_requests=ongoing, ray_actor_options={"num_cpus": 0}
    ).bind(versions, shadow, spec.seed, spec.auth.model_dump(mode="json"))


def build_app(args: dict[str, Any]) -> Application:
    """The config file's ``import_path`` target: ``args`` as :func:`raydl.serve.config.build_args`
    writes them (``run_dir``, ``job``, ``serve``).

    Raises:
        RaydlError: no ``run_dir``, or a ``serve`` section that does not validate.
    """
    if not args.get("run_dir"):
        raise RaydlError("serve application: args.run_dir is required (a run directory or runs folder)")
    try:
        spec = ServeSpec.model_validate(args.get("serve") or {})
    except ValueError as e:
        raise RaydlError(f"serve application: args.serve: {e}") from None
    return application(args["run_dir"], spec, job=args.get("job"))
