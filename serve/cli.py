"""``qa-engine serve``: run the live warning service with uvicorn (plugged in by entry point)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Service settings YAML.")] = None,
) -> None:
    """Serve real-time warnings: POST /v1/check, WebSocket /v1/live, the agent console at /."""
    try:
        import uvicorn

        from serve.app import create_app, freeze_start_up
    except ImportError as exc:
        raise typer.BadParameter(f"the service needs its extra: pip install 'qa-engine[serve]' ({exc})") from None
    from serve.settings import ServeSettings

    try:
        settings = ServeSettings.load(config)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    app = create_app(settings)
    freeze_start_up()
    uvicorn.run(app, host=host, port=port, log_level="warning")
