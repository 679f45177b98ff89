"""The ASGI app: HTTP checks, live WebSocket sessions, health, metrics and the agent console."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from qa_engine.errors import QAEngineError
from qa_engine.findings import Finding, Versions
from qa_engine.pipeline import Pipeline
from qa_engine.schema import Role, Turn
from rules.masking import PersonalDataMasker
from serve.live import LiveSession
from serve.models import (CheckRequest, CheckResponse, SentRequest, SentResponse, TurnIn, Warning,
                          validation_fields)
from serve.metrics import ServiceMetrics
from serve.settings import ServeSettings
from serve.warning_log import WarningLog

log = logging.getLogger("qa_engine.serve")
audit_log = logging.getLogger("qa_engine.serve.audit")  # who saw personal data unmasked, when, what
STATIC = Path(__file__).parent / "static"
SWAGGER_UI = STATIC / "swagger-ui"  # swagger-ui-dist, bundled so /docs works offline
AGENT, AUDITOR = "agent", "auditor"


class TokenBuckets:
    """Per-token rate limit: ``rate`` requests a minute, bursts up to the same number."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.refill = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()  # requests are authorised on worker threads

    def take(self, token: str) -> bool:
        with self._lock:
            now = time.monotonic()
            level, since = self._buckets.get(token, (self.capacity, now))
            level = min(self.capacity, level + (now - since) * self.refill)
            if level < 1:
                self._buckets[token] = (level, now)
                return False
            self._buckets[token] = (level - 1, now)
            return True


class Service:
    """What the app holds: the pipeline, settings, log, metrics and reload state.

    Its scoring and logging methods block (CPU, database): the app calls them on worker
    threads, never on the event loop.
    """

    def __init__(self, settings: ServeSettings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.warning_log = WarningLog(settings.warning_log)
        self.metrics = ServiceMetrics()
        self.buckets = TokenBuckets(settings.rate_limit_per_minute)
        self.roles = {**{t: AGENT for t in settings.tokens}, **{t: AUDITOR for t in settings.auditor_tokens}}
        self.last_reload_error: str | None = None
        self._versions_cache: tuple[Versions, dict[str, Any], str] | None = None
        self._signature = self._files_signature()

    def versions(self) -> dict[str, Any]:
        return self._versions_of(self.pipeline.versions)[0]

    def versions_json(self) -> str:
        return self._versions_of(self.pipeline.versions)[1]

    def _versions_of(self, versions: Versions) -> tuple[dict[str, Any], str]:
        """The dict and JSON of the versions in force, rebuilt only when they change."""
        if self._versions_cache is None or self._versions_cache[0] is not versions:
            data = versions.model_dump()
            self._versions_cache = (versions, data, json.dumps(data, ensure_ascii=False, sort_keys=True))
        return self._versions_cache[1], self._versions_cache[2]

    def check(self, draft: str, context: Sequence[Turn], role: Role = Role.AGENT) -> list[Finding]:
        findings = self.pipeline.check(draft, role=role, context=context)
        self.metrics.warnings(findings)
        return findings

    @cached_property
    def masker(self) -> PersonalDataMasker:
        return PersonalDataMasker()

    def ignored_messages(self, unmasked: bool) -> list[dict[str, Any]]:
        """The audit log's ignored-warning messages, personal data masked unless ``unmasked``."""
        rows = self.warning_log.ignored()
        return rows if unmasked else [{**row, "text": self.masker.mask(row["text"])} for row in rows]

    def _files_signature(self) -> tuple:
        signature = []
        for path in self.pipeline.watched_files():
            try:
                stat = Path(path).stat()
                signature.append((path, stat.st_mtime_ns, stat.st_size))
            except OSError:
                signature.append((path, None, None))
        return tuple(signature)

    async def reload_if_changed(self) -> bool:
        """Swap in changed rule packs. A malformed pack, or a pack or category that disappeared
        (unless ``allow_pack_removal``), is refused and the old packs keep serving."""
        signature = await asyncio.to_thread(self._files_signature)
        if signature == self._signature:
            return False
        self._signature = signature
        before = set(self.pipeline.versions.rule_packs)
        try:
            versions = await asyncio.to_thread(self.pipeline.reload, self.settings.allow_pack_removal)
        except QAEngineError as exc:
            self.last_reload_error = str(exc)
            self.metrics.reloads.labels(outcome="refused").inc()
            log.error("rule pack reload refused, previous packs still serving: %s", exc)
            return False
        self.last_reload_error = None
        self.metrics.reloads.labels(outcome="ok").inc()
        log.info("rule packs reloaded: %s", versions.rule_packs)
        if before - set(versions.rule_packs):
            log.warning("rule packs removed (allow_pack_removal): %s", sorted(before - set(versions.rule_packs)))
        return True

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reload_interval_s)
            await self.reload_if_changed()


def _bearer(request_or_socket: Request | WebSocket) -> str | None:
    header = request_or_socket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request_or_socket.query_params.get("token")


def create_app(settings: ServeSettings, pipeline: Pipeline | None = None) -> FastAPI:
    """Build the app; ``pipeline`` defaults to the one the settings' pipeline config describes."""
    if pipeline is None:
        from qa_engine.config import load_pipeline
        pipeline = load_pipeline(Path(settings.pipeline_config) if settings.pipeline_config else None)
    service = Service(settings, pipeline)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watcher = asyncio.create_task(service.watch()) if settings.reload_interval_s > 0 else None
        yield
        if watcher is not None:
            watcher.cancel()
        await asyncio.to_thread(service.warning_log.close)  # flushes the queued rows

    app = FastAPI(title="qa-engine live warnings", version=pipeline.versions.engine, lifespan=lifespan,
                  description="Real-time compliance warnings for customer-service agents.",
                  docs_url=None, redoc_url=None)  # /docs below serves its assets itself (no CDN)
    app.state.service = service

    app.add_middleware(LimitsAndMetrics, service=service)
    app.mount("/docs-assets", StaticFiles(directory=SWAGGER_UI), name="docs-assets")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"error": "E422", "message": "invalid request",
                                                      "fields": validation_fields(exc.errors())})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in message:
            message = "the request body is not valid UTF-8 JSON"
        return _error(exc.status_code, f"E{exc.status_code}", message, getattr(exc, "headers", None))

    def authorised(role: str) -> Callable[[Request], str]:
        """A dependency admitting only tokens of ``role`` (agents check drafts, auditors export)."""

        def token_of(request: Request) -> str:
            token = _bearer(request)
            held = service.roles.get(token) if token is not None else None
            if held is None:
                raise _Refused(401, "E401", "missing or unknown bearer token", {"WWW-Authenticate": "Bearer"})
            if held != role:
                raise _Refused(403, "E403", f"{request.url.path} needs an {role} token, not an {held} token")
            if not service.buckets.take(token):
                raise _Refused(429, "E429", f"rate limit of {settings.rate_limit_per_minute} requests a minute "
                                            "exceeded", {"Retry-After": "1"})
            return token

        return token_of

    agent, auditor = authorised(AGENT), authorised(AUDITOR)

    @app.exception_handler(_Refused)
    async def refused(request: Request, exc: _Refused) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.headers)

    # plain ``def`` endpoints: FastAPI runs them on its thread pool, so scoring a long draft
    # never holds up the event loop (other agents' sessions, /healthz)
    @app.post("/v1/check", response_model=CheckResponse)
    def check(body: CheckRequest, token: str = Depends(agent)) -> CheckResponse:
        """Warnings for a draft reply (span in the draft, rule, citation, rewrite)."""
        started = time.perf_counter()
        findings = service.check(body.draft, _turns(body.context), body.role)
        session = body.conversation_id or _token_id(token)
        service.warning_log.shown(session, body.conversation_id, body.draft, findings, service.versions_json())
        return CheckResponse(warnings=[Warning.of(f) for f in findings], versions=service.versions(),
                             elapsed_ms=round((time.perf_counter() - started) * 1000, 3))

    @app.post("/v1/sent", response_model=SentResponse)
    def sent(body: SentRequest, token: str = Depends(agent)) -> SentResponse:
        """Record the message the agent finally sent: which warned rules it still violates."""
        findings = service.check(body.text, _turns(body.context))
        session = body.conversation_id or _token_id(token)
        ignored = service.warning_log.sent(session, body.conversation_id, body.text, findings)
        return SentResponse(still_violating=[Warning.of(f) for f in findings], ignored_rules=ignored)

    @app.get("/v1/audit/ignored")
    def ignored(request: Request, format: Literal["json", "csv"] = "json", unmasked: bool = False,
                token: str = Depends(auditor)) -> Any:
        """Messages sent although they still violated a rule the agent had been warned about.

        Auditor tokens only. Personal data in the messages is masked unless ``unmasked=true``,
        which is logged (who, when, what)."""
        rows = service.ignored_messages(unmasked)
        personal_data = "unmasked" if unmasked else "masked"
        if unmasked:
            audit_log.warning("personal data shown UNMASKED: who=%s from=%s when=%s what=GET %s format=%s rows=%d",
                              _token_id(token), request.client.host if request.client else "-",
                              datetime.now(timezone.utc).isoformat(timespec="seconds"), request.url.path,
                              format, len(rows))
        if format == "json":
            return {"personal_data": personal_data, "ignored": rows}
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["ts", "session", "conversation_id", "text", "ignored_rules"])
        for row in rows:
            writer.writerow([row["ts"], row["session"], row["conversation_id"], row["text"],
                             " ".join(row["ignored_rules"])])
        # UTF-8 with BOM so Excel opens the Chinese text correctly
        return Response("\ufeff" + buffer.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": "attachment; filename=warnings-ignored.csv",
                                 "X-Personal-Data": personal_data})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        versions = service.versions()
        ready = bool(versions["rule_packs"])
        return JSONResponse(status_code=200 if ready else 503,
                            content={"ready": ready, "versions": versions,
                                     "last_reload_error": service.last_reload_error})

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        body, content_type = service.metrics.exposition()
        return PlainTextResponse(body, media_type=content_type)

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        """Swagger UI from the bundled assets: no external host, so it works offline."""
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=root + app.openapi_url, title=f"{app.title} — API",
                                   swagger_js_url=f"{root}/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}/docs-assets/swagger-ui.css",
                                   swagger_favicon_url=f"{root}/docs-assets/favicon-32x32.png",
                                   swagger_ui_parameters={"validatorUrl": None})  # no badge from a validator host

    @app.get("/", response_class=HTMLResponse)
    async def console() -> HTMLResponse:
        return HTMLResponse((STATIC / "console.html").read_text(encoding="utf-8"))

    @app.websocket("/v1/live")
    async def live(socket: WebSocket) -> None:
        token = _bearer(socket)
        if token is None or service.roles.get(token) != AGENT:
            await socket.close(code=4401, reason="missing or unknown agent token")
            return
        await socket.accept()
        session = LiveSession(service, socket, session_id=str(uuid.uuid4()),
                              conversation_id=socket.query_params.get("conversation_id"))
        service.metrics.sessions.inc()
        try:
            await session.run()
        except WebSocketDisconnect:
            pass
        finally:
            service.metrics.sessions.dec()

    return app


class LimitsAndMetrics:
    """Pure ASGI middleware: refuses bodies over the limit with 413 — by their Content-Length, or
    while reading a chunked body, before the app sees it — and records every HTTP request's route,
    status and latency. Pure ASGI rather than ``@app.middleware("http")``, which costs about a
    millisecond a request."""

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
            await _error(413, "E413", f"request body over {self.limit} bytes")(scope, receive, recorded_send)
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


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": code, "message": message}, headers=headers)


def _turns(context: list[TurnIn]) -> list[Turn]:
    return [Turn(role=t.role, text=t.text) for t in context]


def _token_id(token: str) -> str:
    return "token-" + hashlib.sha256(token.encode()).hexdigest()[:12]


