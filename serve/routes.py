"""The routes: HTTP checks and audit export, health and metrics, docs and console, live WebSocket sessions.

Who may call which route is decided before a request gets here (``serve.middleware.Tokens``);
the token admitted is ``request.state.token``. The draft routes are served by `DraftRoutes`.
"""

from __future__ import annotations

import csv
import inspect
import io
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from qa_engine.findings import Finding
from qa_engine.schema import Role, Turn
from serve.live import LiveSession
from serve.middleware import error, invalid
from serve.models import CheckRequest, CheckResponse, SentRequest, SentResponse, TurnIn, Warning, validation_fields
from serve.service import Service, token_id

audit_log = logging.getLogger("qa_engine.serve.audit")  # who saw personal data unmasked, when, what
STATIC = Path(__file__).parent / "static"
INLINE_CHARS, INLINE_TURNS = 256, 8  # the largest check run on the event loop (~0.5 ms)


Body = TypeVar("Body", bound=BaseModel)


@dataclass(frozen=True)
class DraftRoute(Generic[Body]):
    """``POST path``: a JSON body validated by ``body`` (a pydantic model), answered by ``endpoint``
    with a ``response`` model."""

    path: str
    body: type[Body]
    response: type[BaseModel]
    endpoint: Callable[[Body, str], Awaitable[BaseModel]]  # (body, the admitted token) -> answer


class DraftRoutes:
    """Pure ASGI, in front of the app's router: answers the routes an agent's client calls as the
    agent types (``/v1/check``, ``/v1/sent``) and hands every other request on.

    They skip FastAPI's request handling — exception and exit-stack middleware, routing, the
    ``Request`` and dependency solving, about 60 µs a request, as much as checking a draft — and
    keep its answers: a body that is not JSON, not UTF-8 or not valid gets the app's 422 naming
    the fields under ``body`` (400 for UTF-8); another method 405. Tokens, rate limits, the body
    limit and metrics are the middleware's, as for every route. `document` adds them to OpenAPI.
    """

    def __init__(self, app: Any, routes: Sequence[DraftRoute]) -> None:
        self.app = app
        self.routes = {route.path: route for route in routes}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        await (await self._answer(route, scope, receive))(scope, receive, send)

    async def _answer(self, route: DraftRoute, scope: dict, receive: Any) -> Response:
        if scope["method"] != "POST":
            return error(405, "E405", "Method Not Allowed", {"Allow": "POST"})
        media_type = Headers(scope=scope).get("content-type", "").partition(";")[0].strip().lower()
        if media_type != "application/json" and not media_type.endswith("+json"):
            return invalid([{"field": "body", "message": "the body must be JSON (Content-Type: application/json)"}])
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return error(400, "E400", f"the request body is not valid UTF-8 JSON (byte {exc.start})")
        try:
            body = route.body.model_validate_json(raw)
        except ValidationError as exc:
            return invalid(validation_fields([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]))
        answer = await route.endpoint(body, scope["state"]["token"])
        return Response(answer.model_dump_json(), media_type="application/json")


def document(app: FastAPI, routes: Sequence[DraftRoute]) -> None:
    """Add the draft routes to the app's OpenAPI document, their bodies and answers as JSON Schema."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            modes = [(m, mode) for route in routes for m, mode in ((route.body, "validation"),
                                                                    (route.response, "serialization"))]
            refs, definitions = models_json_schema(modes, ref_template="#/components/schemas/{model}")
            schema.setdefault("components", {}).setdefault("schemas", {}).update(definitions["$defs"])
            for route in routes:
                name = route.endpoint.__name__
                schema["paths"][route.path] = {"post": {
                    "summary": name.capitalize(), "description": inspect.getdoc(route.endpoint),
                    "operationId": f"{name}_{route.path.strip('/').replace('/', '_')}_post",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": refs[route.body, "validation"]}}},
                    "responses": {"200": {"description": "Successful Response", "content": {"application/json": {
                        "schema": refs[route.response, "serialization"]}}},
                                  "422": {"description": "Invalid body: the fields named"}}}}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's way to extend its document


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
    # validated parts and serialised by pydantic directly, not validated again
    async def check(body: CheckRequest, token: str) -> CheckResponse:
        """Warnings for a draft reply (span in the draft, rule, citation, rewrite)."""
        started = time.perf_counter()
        findings = await score(body.draft, body.context, body.role)
        session = body.conversation_id or token_id(token)
        service.warning_log.shown(session, body.conversation_id, body.draft, findings, service.versions_json)
        return CheckResponse.model_construct(warnings=[Warning.of(f) for f in findings], versions=service.versions,
                                             elapsed_ms=round((time.perf_counter() - started) * 1000, 3))

    async def sent(body: SentRequest, token: str) -> SentResponse:
        """Record the message the agent finally sent: which warned rules it still violates."""
        findings = await score(body.text, body.context)
        session = body.conversation_id or token_id(token)
        ignored = service.warning_log.sent(session, body.conversation_id, body.text, findings)
        return SentResponse.model_construct(still_violating=[Warning.of(f) for f in findings], ignored_rules=ignored)

    drafts = [DraftRoute("/v1/check", CheckRequest, CheckResponse, check),
              DraftRoute("/v1/sent", SentRequest, SentResponse, sent)]
    app.add_middleware(DraftRoutes, routes=drafts)  # innermost: after the tokens, limits and metrics
    document(app, drafts)

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

