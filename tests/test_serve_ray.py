"""The Ray Serve deployment serves the same app over HTTP."""

from __future__ import annotations

import json
import socket
import urllib.request

import pytest

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")
pytestmark = pytest.mark.ray


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_ray_serve_deployment_checks_drafts(tmp_path, monkeypatch):
    monkeypatch.setenv("QA_ENGINE_TOKENS", "ray-serve-token")
    monkeypatch.setenv("QA_ENGINE_WARNING_LOG", str(tmp_path / "w.sqlite3"))
    from serve.deployment import build

    port = free_port()
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"QA_ENGINE_TOKENS": "ray-serve-token",
                                       "QA_ENGINE_WARNING_LOG": str(tmp_path / "w.sqlite3")}})
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build({}), name="qa", route_prefix="/")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/check", data=json.dumps({"draft": "亲，这款是全网最好的"}).encode(),
            headers={"Authorization": "Bearer ray-serve-token", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
        assert [w["rule_id"] for w in body["warnings"]] == ["ad_law.network_best"]
    finally:
        serve.shutdown()
        ray.shutdown()
