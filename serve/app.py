"""The ASGI app: the service (``serve.service``) behind its middleware (``serve.middleware``) and routes
(``serve.routes``: HTTP checks, live WebSocket sessions, health, metrics and the agent console)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from qa_engine.pipeline import Pipeline
from serve.middleware import LimitsAndMetrics, Tokens, error, invalid
from serve.models import validation_fields
from serve.routes import STATIC, add_routes
from serve.service import Service
from serve.settings import ServeSettings

SWAGGER_UI = STATIC / "swagger-ui"  # swagger-ui-dist, bundled so /docs works offline


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

    # /docs (in the routes) serves its assets itself (no CDN). The service's metrics are its own
    # (/metrics): FastAPI's native OpenTelemetry is off, sparing its per-request provider look-up
    app = FastAPI(title="qa-engine live warnings", version=pipeline.versions.engine, lifespan=lifespan,
                  description="Real-time compliance warnings for customer-service agents.",
                  docs_url=None, redoc_url=None, telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.service = service
    add_routes(app, service)  # its draft routes are middleware: added first, so innermost
    app.add_middleware(Tokens, service=service)
    app.add_middleware(LimitsAndMetrics, service=service)  # outermost: a body over the limit is refused first
    app.mount("/docs-assets", StaticFiles(directory=SWAGGER_UI), name="docs-assets")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return invalid(validation_fields(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, f"E{exc.status_code}", str(exc.detail), getattr(exc, "headers", None))

    return app


def freeze_start_up() -> None:
    """Move what start-up built (the pipeline's rule data: ~250,000 objects) out of the cyclic
    collector's reach: a full collection over them takes 30–45 ms, a pause in whichever answers it
    lands on. For the process that serves, after ``create_app``; never in tests, whose later
    garbage it would keep."""
    gc.collect()
    gc.freeze()
