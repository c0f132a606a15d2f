"""Versions side by side: a small router deployment over the model deployments' handles
(Ray Serve 2.x has no traffic splitting of its own).

- **A/B**: each ``POST /predict`` goes to one version, drawn by weight (``serve.versions``;
  the main run gets the rest); the answer's ``model.version`` names it.
- **Shadow**: ``serve.shadow`` sees a copy of every ``/predict`` request after the answer is
  chosen; its answers are compared with the one returned (agreement of labels) and logged,
  never returned, and its failures (an error, a 4xx/5xx, a dead replica) never reach the client.

``GET /versions`` (and ``/metadata``) show every version and the shadow's agreement so far.
Each version's own metrics carry its name as the ``version`` label. ``serve.auth`` is
checked here, at the ingress (the versions behind it answer only handle calls).

No ``from __future__ import annotations`` (see :mod:`raydl.serve.app`).
"""

import asyncio
import json
import logging
import random
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.exceptions import BackPressureError

from raydl.serve.auth import BearerAuth, replica_token, required_token
from raydl.serve.metrics import _keys
from raydl.spec.serve import AuthSpec

log = logging.getLogger("raydl.serve.shadow")

router_api = FastAPI(title="raydl model server (versions)", openapi_url=None, docs_url=None, redoc_url=None)
router_api.add_middleware(BearerAuth, token=replica_token)  # the router is the ingress: serve.auth here


def _labels(body: dict[str, Any]) -> list[Any]:
    return [p.get("label", p.get("value")) for p in body.get("predictions", [])]


@serve.deployment(name="Router")
@serve.ingress(router_api)
class Router:
    """Picks a version per request; copies requests to the shadow."""

    def __init__(
        self,
        versions: list[tuple[str, float, Any]],
        shadow: Any = None,
        seed: int | None = None,
        auth: dict[str, Any] | None = None,
    ) -> None:
        self.token = required_token(AuthSpec.model_validate(auth or {}))
        self.names = [n for n, _, _ in versions]
        self.weights = [w for _, w, _ in versions]
        self.handles = {n: h for n, _, h in versions}
        self.shadow = shadow
        self.rng = random.Random(seed)
        self.shadowed = {"requests": 0, "failed": 0, "rows": 0, "agreed": 0}
        self._tasks: set[asyncio.Task[None]] = set()
        from ray.serve import metrics

        self.agreement = metrics.Counter(
            "raydl_shadow_rows",
            description="Rows the shadow answered, by whether it agreed with the answer returned.",
            tag_keys=_keys("agreed"),
        )
        self.shadow_failures = metrics.Counter(
            "raydl_shadow_failures", description="Shadow requests that failed (never seen by clients)."
        )

    @router_api.post("/predict")
    async def predict(self, request: Request) -> Any:
        body = await request.body()
        name = self.rng.choices(self.names, self.weights)[0]
        try:
            status, answer = await self.handles[name].predict_body.remote(body)
        except BackPressureError:
            return JSONResponse({"error": "overloaded; retry later"}, 503, headers={"Retry-After": "1"})
        if self.shadow is not None and status == 200:
            task = asyncio.create_task(self._shadow(body, answer))
            self._tasks.add(task)  # held until done (the loop keeps only weak references)
            task.add_done_callback(self._tasks.discard)
        return JSONResponse(answer, status_code=status)

    async def _shadow(self, body: bytes, answer: dict[str, Any]) -> None:
        self.shadowed["requests"] += 1
        try:
            status, theirs = await self.shadow.predict_body.remote(body)
            if status != 200:
                raise RuntimeError(f"answered {status}: {theirs.get('error')}")
        except Exception as e:  # the shadow's trouble is logged and counted, never the client's
            self.shadowed["failed"] += 1
            self.shadow_failures.inc()
            log.warning(json.dumps({"event": "shadow_failed", "error": str(e)[:300]}))
            return
        ours, shadow = _labels(answer), _labels(theirs)
        agreed = sum(a == b for a, b in zip(ours, shadow, strict=False))
        self.shadowed["rows"] += len(ours)
        self.shadowed["agreed"] += agreed
        self.agreement.inc(agreed, tags={"agreed": "yes"})
        if len(ours) > agreed:
            self.agreement.inc(len(ours) - agreed, tags={"agreed": "no"})
        log.info(json.dumps({"event": "shadow", "rows": len(ours), "agreed": agreed}))

    @router_api.get("/versions")
    async def versions(self) -> dict[str, Any]:
        """Every version with its share and metadata, and the shadow's agreement so far."""
        metas = await asyncio.gather(*(self.handles[n].metadata.remote() for n in self.names))
        out: dict[str, Any] = {
            "versions": [
                {"name": n, "weight": w, "model": m["model"]}
                for n, w, m in zip(self.names, self.weights, metas, strict=True)
            ]
        }
        if self.shadow is not None:
            rows = self.shadowed["rows"]
            meta = await self.shadow.metadata.remote()
            out["shadow"] = {
                "model": meta["model"],
                **self.shadowed,
                "agreement": self.shadowed["agreed"] / rows if rows else None,
            }
        return out

    @router_api.get("/metadata")
    async def metadata(self) -> dict[str, Any]:
        """The main version's metadata, and every version's (``versions``)."""
        main = await self.handles[self.names[0]].metadata.remote()
        return {**main, **(await self.versions())}

    @router_api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}
