"""Ray Serve deployment of the same app, for contact centres that outgrow one machine.

    serve run serve.deployment:build config=serve.yaml replicas=4

Each replica builds the app (and so its pipeline, warning log and watcher) itself when it
starts: ``serve.ingress`` is given a builder, so nothing unpicklable crosses the cluster.
Settings come from the config file and ``QA_ENGINE_*`` environment variables, as for
``qa-engine serve``; point ``warning_log`` at one PostgreSQL database (``postgresql://…``) so
the audit export sees every replica.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray import serve


def build(args: dict[str, Any]) -> serve.Application:
    """Application builder for ``serve run``: ``config`` (settings YAML), ``replicas``."""
    config = args.get("config")

    def make_app():
        from serve.app import create_app, freeze_start_up
        from serve.settings import ServeSettings

        app = create_app(ServeSettings.load(Path(config) if config else None))
        freeze_start_up()
        return app

    deployment = serve.deployment(
        serve.ingress(make_app)(type("QAEngineLive", (), {"__doc__": "Live warnings (qa-engine)."})),
        name="qa-engine-live", num_replicas=int(args.get("replicas", 1)), ray_actor_options={"num_cpus": 1},
    )
    return deployment.bind()
