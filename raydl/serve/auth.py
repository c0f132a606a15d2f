"""Bearer-token authentication of the serve endpoint (``serve.auth``): an ASGI middleware in
front of the model's (and the router's) FastAPI app.

With ``serve.auth.token_env`` set, every request but the probes (``/healthz`` and the Open
Inference Protocol's ``/v2/health/live`` and ``/v2/health/ready``, which Kubernetes calls
without credentials) must carry ``Authorization: Bearer <token>``; the token is compared in
constant time (:func:`hmac.compare_digest`). A missing or wrong one is answered 401 with a
JSON message and ``WWW-Authenticate: Bearer`` (RFC 6750). The token itself is never logged,
written or put in an answer: only the variable's name travels in the spec and the config.

Ray-free on import: the middleware asks its ``token`` callable (:func:`replica_token`) for
the token of the replica it runs in.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from raydl import env
from raydl.errors import RaydlError
from raydl.spec.serve import AuthSpec

log = logging.getLogger("raydl.serve.requests")

#: answered without a token: liveness and readiness probes
OPEN_PATHS = frozenset({"/healthz", "/v2/health/live", "/v2/health/ready"})
REALM = 'Bearer realm="raydl"'

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def required_token(auth: AuthSpec) -> str | None:
    """The token ``auth.token_env`` names; None when auth is off.

    Raises:
        RaydlError: auth is on and the variable is unset or empty (a server that would
            refuse every request, or one that would answer them all, is not started).
    """
    if auth.token_env is None:
        return None
    token = env.serve_token(auth.token_env)
    if token is None:
        raise RaydlError(
            f"serve.auth.token_env: the environment variable {auth.token_env} is empty or not set; "
            "put the bearer token there (or drop serve.auth.token_env to serve without one)"
        )
    return token


def authorized(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (compared in constant time)."""
    scheme, _, given = (header or "").partition(" ")
    ok = hmac.compare_digest(given.strip().encode(), token.encode())
    return ok and scheme.lower() == "bearer"


def refusal(header: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """The 401's JSON body and headers: what is wrong, never the token."""
    if not header:
        body = {"error": "this endpoint needs a bearer token: send 'Authorization: Bearer <token>'"}
        return body, {"WWW-Authenticate": REALM}
    body = {"error": "invalid bearer token (send 'Authorization: Bearer <token>')"}
    return body, {"WWW-Authenticate": f'{REALM}, error="invalid_token"'}


def route_path(scope: Scope) -> str:
    """The path under the application's route prefix (``root_path``)."""
    path, root = scope.get("path", ""), scope.get("root_path", "").rstrip("/")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


def replica_token() -> str | None:
    """The token of the Serve replica answering the request (its ``token`` attribute; a
    servable without one is a bug, and fails rather than letting requests through)."""
    from ray import serve

    token: str | None = serve.get_replica_context().servable_object.token  # type: ignore[attr-defined]
    return token


class BearerAuth:
    """ASGI middleware: HTTP requests but the probes need the token ``token()`` gives (none:
    every request passes)."""

    def __init__(self, app: ASGIApp, token: Callable[[], str | None]) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        token = self.token() if scope["type"] == "http" else None
        if token is None or route_path(scope) in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        if authorized(header, token):
            await self.app(scope, receive, send)
            return
        body, headers = refusal(header)
        log.info(json.dumps({"event": "unauthorized", "path": route_path(scope), "status": 401}))
        raw = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(raw)).encode()),
                    *((k.lower().encode(), v.encode()) for k, v in headers.items()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": raw})
