"""Pure ASGI middleware in front of the routes: body size limit and metrics, then tokens and rate limits.

Pure ASGI rather than ``@app.middleware("http")`` (Starlette's ``BaseHTTPMiddleware``), which
costs about a millisecond a request, and rather than FastAPI dependencies, whose solving costs
tens of microseconds a request on the path that checks drafts.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi.responses import JSONResponse
from starlette.datastructures import QueryParams

from serve.service import AGENT, AUDITOR, Service

# which token a path needs: the first prefix that matches; any other /v1/ path an agent's
# (closed by default: a new route is never public by accident); everything else none
ROLES = (("/v1/audit/", AUDITOR), ("/v1/", AGENT))


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The service's error body, ``{"error", "message"}`` (itself an ASGI app)."""
    return JSONResponse(status_code=status, content={"error": code, "message": message}, headers=headers)


def invalid(fields: list[dict[str, str]]) -> JSONResponse:
    """422 naming the fields that are wrong (``{"field", "message"}`` each)."""
    return JSONResponse(status_code=422, content={"error": "E422", "message": "invalid request", "fields": fields})


class LimitsAndMetrics:
    """Refuses bodies over the limit with 413 — by their Content-Length, or while reading a chunked
    body, before the app sees it — and records every HTTP request's route, status and latency."""

    def __init__(self, app: Any, service: Service) -> None:
        self.app = app
        self.service = service
        self.limit = service.settings.max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recorded_send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        buffered = await self._body(scope, receive)
        if buffered is None:
            await error(413, "E413", f"request body over {self.limit} bytes")(scope, receive, recorded_send)
        else:
            async def replay() -> dict:
                return buffered.pop(0) if buffered else await receive()

            await self.app(scope, replay, recorded_send)
        self.service.metrics.observe(scope["path"], status, time.perf_counter() - started)

    async def _body(self, scope: dict, receive: Any) -> list[dict] | None:
        """The request's body messages (at most ``limit`` bytes), or ``None`` when it is larger.
        Read here because the app turns an error raised while it reads the body into a 400."""
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            return None
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.limit:
                return None
            if message["type"] != "http.request" or not message.get("more_body", False):
                return messages


class Tokens:
    """Admits a request only with a bearer token of the role its path needs (``ROLES``) — agents
    check drafts and open live sessions, auditors export — and within the token's rate limit.

    HTTP: 401 without a known token, 403 with the other role's, 429 over the rate limit. A live
    session without an agent token is closed with 4401 before it is accepted. The admitted token
    is ``request.state.token``.
    """

    def __init__(self, app: Any, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        need = (next((role for prefix, role in ROLES if scope["path"].startswith(prefix)), None)
                if scope["type"] in ("http", "websocket") else None)
        if need is None:
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        held = self.service.roles.get(token) if token is not None else None
        if scope["type"] == "websocket":
            if held != AGENT:
                await send({"type": "websocket.close", "code": 4401, "reason": "missing or unknown agent token"})
                return
        elif held is None:
            await error(401, "E401", "missing or unknown bearer token", {"WWW-Authenticate": "Bearer"})(
                scope, receive, send)
            return
        elif held != need:
            await error(403, "E403", f"{scope['path']} needs an {need} token, not an {held} token")(
                scope, receive, send)
            return
        elif not self.service.buckets.take(token):
            await error(429, "E429", f"rate limit of {self.service.settings.rate_limit_per_minute} requests a "
                                     "minute exceeded", {"Retry-After": "1"})(scope, receive, send)
            return
        scope.setdefault("state", {})["token"] = token
        await self.app(scope, receive, send)


def _bearer(scope: dict) -> str | None:
    """The token of an ``Authorization: Bearer`` header, else of a ``token`` query parameter."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            header = value.decode("latin-1")
            if header.lower().startswith("bearer "):
                return header[7:].strip()
            break
    return QueryParams(scope["query_string"]).get("token") if scope["query_string"] else None
