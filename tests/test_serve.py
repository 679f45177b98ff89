"""The live warning service: endpoints, auth and limits, hot reload, the WebSocket flow."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest
import yaml

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from qa_engine.baselines import EmpathyLexicalDetector, ResolutionLexicalDetector  # noqa: E402
from qa_engine.pipeline import Pipeline  # noqa: E402
from rules.detector import make_rule_detector  # noqa: E402
from rules.pack import BUNDLED_PACKS, pack_files  # noqa: E402
from serve.app import create_app  # noqa: E402
from serve.settings import ServeSettings  # noqa: E402

TOKEN = "agent-console-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def packs(tmp_path):
    folder = tmp_path / "packs"
    folder.mkdir()
    for path in pack_files(BUNDLED_PACKS):
        shutil.copy(path, folder / path.name)
    return folder


def make_client(tmp_path, packs, **overrides) -> TestClient:
    settings = ServeSettings(tokens=[TOKEN], warning_log=str(tmp_path / "warnings.sqlite3"), reload_interval_s=0,
                             **overrides)
    pipeline = Pipeline([make_rule_detector([str(packs)]), EmpathyLexicalDetector(), ResolutionLexicalDetector()])
    return TestClient(create_app(settings, pipeline))


@pytest.fixture
def client(tmp_path, packs):
    with make_client(tmp_path, packs) as client:
        yield client


def test_check_returns_warnings_with_span_citation_and_rewrite(client):
    draft = "亲，这款是全网最好的，明天一定发货"
    response = client.post("/v1/check", json={"draft": draft}, headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    rules = {w["rule_id"]: w for w in body["warnings"]}
    assert set(rules) == {"ad_law.network_best", "overpromise.delivery"}
    best = rules["ad_law.network_best"]
    assert draft[best["start"]:best["end"]] == best["evidence"] == "全网最好"
    assert "广告法" in best["citation"] and best["rewrite"] and best["severity"] == "critical"
    assert set(body["versions"]["rule_packs"]) == {"ad_law", "conduct", "efficacy", "overpromise", "privacy"}


def test_check_uses_context_and_allows_empty_drafts(client):
    context = [{"role": "customer", "text": "别家说他们是全网最好的"}]
    quoted = client.post("/v1/check", json={"draft": "您说的“全网最好”我们不敢承诺", "context": context}, headers=AUTH)
    assert quoted.json()["warnings"] == []
    empty = client.post("/v1/check", json={"draft": ""}, headers=AUTH)
    assert empty.status_code == 200 and empty.json()["warnings"] == []


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}])
def test_auth_is_required(client, headers):
    response = client.post("/v1/check", json={"draft": "全网最好"}, headers=headers)
    assert response.status_code == 401 and response.json()["error"] == "E401"
    assert response.headers["www-authenticate"] == "Bearer"


def test_payload_limit(tmp_path, packs):
    with make_client(tmp_path, packs, max_body_bytes=1024) as client:
        response = client.post("/v1/check", json={"draft": "好" * 1000}, headers=AUTH)
        assert response.status_code == 413 and "1024" in response.json()["message"]
        assert client.post("/v1/check", json={"draft": "好"}, headers=AUTH).status_code == 200


def test_rate_limit_per_token(tmp_path, packs):
    with make_client(tmp_path, packs, rate_limit_per_minute=3) as client:
        codes = [client.post("/v1/check", json={"draft": "您好"}, headers=AUTH).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]


# fmt: off
@pytest.mark.parametrize(("payload", "field"), [
    ({"text": "全网最好"}, "body.draft"),
    ({"draft": 42}, "body.draft"),
    ({"draft": "x", "context": [{"role": "boss", "text": "hi"}]}, "body.context.0.role"),
    ({"draft": "x", "colour": "red"}, "body.colour"),
])
# fmt: on
def test_validation_errors_name_the_field(client, payload, field):
    response = client.post("/v1/check", json=payload, headers=AUTH)
    assert response.status_code == 422
    assert field in [f["field"] for f in response.json()["fields"]]


def test_non_utf8_body_is_refused_with_a_clear_error(client):
    body = '{"draft": "'.encode() + "全网最好".encode("gbk") + b'"}'
    response = client.post("/v1/check", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code in (400, 422)
    assert response.json()["error"] in ("E400", "E422") and "UTF-8" in json.dumps(response.json())


def test_health_ready_metrics_openapi(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["ready"] and ready["versions"]["rule_packs"]["ad_law"].startswith("2026")
    client.post("/v1/check", json={"draft": "全网最好"}, headers=AUTH)
    metrics = client.get("/metrics").text
    assert 'qa_requests_total{route="/v1/check",status="200"}' in metrics
    assert 'qa_warnings_total{rule_id="ad_law.network_best"} 1.0' in metrics
    assert "qa_request_latency_seconds_bucket" in metrics
    assert "/v1/check" in client.get("/openapi.json").json()["paths"]
    assert "坐席实时合规提示" in client.get("/").text


def test_hot_reload_good_and_malformed_packs_without_dropping_sessions(client, packs):
    service = client.app.state.service
    with client.websocket_connect(f"/v1/live?token={TOKEN}") as live:
        live.send_json({"type": "draft", "seq": 1, "text": "这款是宇宙无敌款"})
        assert live.receive_json()["warnings"] == []

        pack = packs / "ad_law.yaml"
        data = yaml.safe_load(pack.read_text(encoding="utf-8"))
        data["rules"][0]["terms"].append("宇宙无敌")
        pack.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        assert asyncio.run(service.reload_if_changed())
        live.send_json({"type": "draft", "seq": 2, "text": "这款是宇宙无敌款"})
        assert [w["evidence"] for w in live.receive_json()["warnings"]] == ["宇宙无敌"]

        pack.write_text("pack: ad_law\nversion: x\ncategory: ad_law\nrules: [{id: ad_law.broken}]\n", encoding="utf-8")
        assert not asyncio.run(service.reload_if_changed())
        assert "ad_law.broken" in client.get("/readyz").json()["last_reload_error"]
        live.send_json({"type": "draft", "seq": 3, "text": "这款是宇宙无敌款"})
        assert [w["evidence"] for w in live.receive_json()["warnings"]] == ["宇宙无敌"]  # old packs serve on
    assert 'qa_rule_reloads_total{outcome="refused"} 1.0' in client.get("/metrics").text


def test_websocket_flow_alerts_supersede_and_ignored_warnings(client):
    service = client.app.state.service
    with client.websocket_connect(f"/v1/live?token={TOKEN}&conversation_id=c-42") as live:
        live.send_json({"type": "turn", "role": "customer", "text": "衣服破了个洞"})
        alerts = live.receive_json()
        assert alerts["type"] == "alerts" and [a["code"] for a in alerts["alerts"]] == ["no_empathy_after_complaint"]
        for seq, text in enumerate(["亲", "亲，这款", "亲，这款是全网最好的"], start=1):
            live.send_json({"type": "draft", "seq": seq, "text": text})
        results = []
        while not results or results[-1]["seq"] != 3:
            results.append(live.receive_json())
        assert [r["seq"] for r in results] == sorted(r["seq"] for r in results)  # never a stale draft after a newer
        assert [w["rule_id"] for w in results[-1]["warnings"]] == ["ad_law.network_best"]
        live.send_json({"type": "sent", "text": "亲，这款是全网最好的"})
        assert live.receive_json() == {"type": "sent", "ignored_rules": ["ad_law.network_best"]}
        live.send_json({"type": "customer"})
        assert live.receive_json()["type"] == "error"
        live.send_json({"type": "turn", "role": "customer", "text": "什么态度，我要投诉，差评"})
        codes = [a["code"] for a in live.receive_json()["alerts"]]
        assert "customer_anger_rising" in codes
    (ignored,) = service.warning_log.ignored()
    assert ignored["conversation_id"] == "c-42" and ignored["ignored_rules"] == ["ad_law.network_best"]


def test_websocket_needs_a_token(client):
    with pytest.raises(WebSocketDisconnect) as closed:
        with client.websocket_connect("/v1/live") as live:
            live.receive_json()
    assert closed.value.code == 4401


def test_sent_over_http_records_ignored_warnings(client):
    client.post("/v1/check", json={"draft": "明天一定发货", "conversation_id": "c-7"}, headers=AUTH)
    response = client.post("/v1/sent", json={"text": "明天一定发货哦", "conversation_id": "c-7"}, headers=AUTH)
    assert response.json()["ignored_rules"] == ["overpromise.delivery"]
    clean = client.post("/v1/sent", json={"text": "我们会尽快发货", "conversation_id": "c-8"}, headers=AUTH)
    assert clean.json() == {"still_violating": [], "ignored_rules": []}
    (row,) = client.get("/v1/audit/ignored", headers=AUTH).json()["ignored"]
    assert row["conversation_id"] == "c-7" and row["ignored_rules"] == ["overpromise.delivery"]
    exported = client.get("/v1/audit/ignored?format=csv", headers=AUTH)
    assert exported.content.startswith("\ufeff".encode()) and "明天一定发货哦" in exported.text
    assert client.get("/v1/audit/ignored").status_code == 401


def test_settings_need_tokens(tmp_path):
    with pytest.raises(ValueError, match="QA_ENGINE_TOKENS"):
        ServeSettings.load(None, environ={})
    config = tmp_path / "serve.yaml"
    config.write_text("rate_limit_per_minute: 5\n", encoding="utf-8")
    settings = ServeSettings.load(config, environ={"QA_ENGINE_TOKENS": "a, b"})
    assert settings.tokens == ["a", "b"] and settings.rate_limit_per_minute == 5
