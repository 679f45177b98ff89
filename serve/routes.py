"""The routes: HTTP checks and audit export, health and metrics, docs and console, live WebSocket sessions.

Who may call which route is decided before a request gets here (``serve.middleware.Tokens``);
the token admitted is ``request.state.token``.
"""

from __future__ import annotations

import csv
import inspect
import io
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from qa_engine.findings import Finding
from qa_engine.schema import Role, Turn
from serve.live import LiveSession
from serve.models import CheckRequest, CheckResponse, SentRequest, SentResponse, TurnIn, Warning
from serve.service import Service, token_id

audit_log = logging.getLogger("qa_engine.serve.audit")  # who saw personal data unmasked, when, what
STATIC = Path(__file__).parent / "static"
INLINE_CHARS, INLINE_TURNS = 256, 8  # the largest check run on the event loop (~0.5 ms)


class JSONBodyRoute(APIRoute):
    """A route whose async endpoint takes one JSON body (a pydantic model) and the ``Request``, and
    returns a ``Response``: the body is validated by its model straight from the bytes and the endpoint
    called, instead of going through FastAPI's general request handling (content-type parsing with the
    ``email`` package, dependency solving; ~15 µs a request). Documented in OpenAPI like any route;
    errors answer as FastAPI's do (422 naming the fields under ``body``, 400 for a body not in UTF-8)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        dependant, endpoint = self.dependant, self.endpoint
        others = (dependant.path_params, dependant.query_params, dependant.header_params, dependant.cookie_params,
                  dependant.dependencies)
        if self.body_field is None or len(dependant.body_params) != 1 or any(others) \
                or dependant.request_param_name is None or not inspect.iscoroutinefunction(endpoint):
            raise TypeError(f"{self.path}: a JSONBodyRoute endpoint is async and takes one body and the request only")
        model, body_name, request_name = self.body_field.field_info.annotation, self.body_field.name, \
            dependant.request_param_name

        async def handle(request: Request) -> Response:
            media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
            if media_type != "application/json" and not media_type.endswith("+json"):
                raise RequestValidationError([{"type": "model_attributes_type", "loc": ("body",), "input": None,
                                               "msg": "the body must be JSON (Content-Type: application/json)"}])
            raw = await request.body()
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise HTTPException(400, f"the request body is not valid UTF-8 JSON (byte {exc.start})") from None
            try:
                body = model.model_validate_json(raw)
            except ValidationError as exc:
                raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()],
                                             body=raw) from None
            return await endpoint(**{body_name: body, request_name: request})

        return handle


def add_routes(app: FastAPI, service: Service) -> None:
    """Every route of the app, over one service. Added to the app itself: each level of included
    ``APIRouter`` costs about 20 µs a request in FastAPI's routing."""
    console_page = (STATIC / "console.html").read_text(encoding="utf-8")

    async def score(text: str, context: list[TurnIn], role: Role = Role.AGENT) -> list[Finding]:
        """Check a text; a long one on the thread pool, so it holds up only its own answer (not other
        agents' sessions or /healthz). A short one — at most ``INLINE_CHARS`` characters, the text and
        at most ``INLINE_TURNS`` turns before it together, well under a millisecond — is checked on the
        event loop: handing it to a thread and back costs more than the check."""
        turns = [Turn(role=t.role, text=t.text) for t in context]
        small = len(turns) <= INLINE_TURNS and len(text) + sum(len(t.text) for t in turns) <= INLINE_CHARS
        if small:
            return service.check(text, turns, role)
        return await run_in_threadpool(service.check, text, turns, role)

    # the warning log only queues rows (a background thread writes them). Answers are built of
    # validated parts and serialised by pydantic directly, not validated again (``response_model``
    # documents them).
    async def check(body: CheckRequest, request: Request) -> Response:
        """Warnings for a draft reply (span in the draft, rule, citation, rewrite)."""
        started = time.perf_counter()
        findings = await score(body.draft, body.context, body.role)
        session = body.conversation_id or token_id(request.state.token)
        service.warning_log.shown(session, body.conversation_id, body.draft, findings, service.versions_json)
        return _json(CheckResponse.model_construct(warnings=[Warning.of(f) for f in findings],
                                                   versions=service.versions,
                                                   elapsed_ms=round((time.perf_counter() - started) * 1000, 3)))

    async def sent(body: SentRequest, request: Request) -> Response:
        """Record the message the agent finally sent: which warned rules it still violates."""
        findings = await score(body.text, body.context)
        session = body.conversation_id or token_id(request.state.token)
        ignored = service.warning_log.sent(session, body.conversation_id, body.text, findings)
        return _json(SentResponse.model_construct(still_violating=[Warning.of(f) for f in findings],
                                                  ignored_rules=ignored))

    # the routes an agent's client calls as the agent types
    app.router.add_api_route("/v1/check", check, methods=["POST"], response_model=CheckResponse,
                             route_class_override=JSONBodyRoute)
    app.router.add_api_route("/v1/sent", sent, methods=["POST"], response_model=SentResponse,
                             route_class_override=JSONBodyRoute)

    @app.get("/v1/audit/ignored")
    def ignored(request: Request, format: Literal["json", "csv"] = "json", unmasked: bool = False) -> Any:
        """Messages sent although they still violated a rule the agent had been warned about.

        Auditor tokens only. Personal data in the messages is masked unless ``unmasked=true``,
        which is logged (who, when, what)."""
        rows = service.ignored_messages(unmasked)
        personal_data = "unmasked" if unmasked else "masked"
        if unmasked:
            audit_log.warning("personal data shown UNMASKED: who=%s from=%s when=%s what=GET %s format=%s rows=%d",
                              token_id(request.state.token), request.client.host if request.client else "-",
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
        versions = service.versions
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
        return get_swagger_ui_html(openapi_url=root + request.app.openapi_url, title=f"{request.app.title} — API",
                                   swagger_js_url=f"{root}/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}/docs-assets/swagger-ui.css",
                                   swagger_favicon_url=f"{root}/docs-assets/favicon-32x32.png",
                                   swagger_ui_parameters={"validatorUrl": None})  # no badge from a validator host

    @app.get("/", response_class=HTMLResponse)
    async def console() -> HTMLResponse:
        return HTMLResponse(console_page)

    @app.websocket("/v1/live")
    async def live(socket: WebSocket) -> None:
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



def _json(answer: CheckResponse | SentResponse) -> Response:
    """The answer as JSON (as FastAPI would write it, without validating it again against its model)."""
    return Response(answer.model_dump_json(), media_type="application/json")
