"""The live warning service: endpoints, auth and limits, hot reload, the WebSocket flow."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import threading
import time

import pytest
import yaml

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from qa_engine.baselines import EmpathyLexicalDetector, ResolutionLexicalDetector  # noqa: E402
from qa_engine.errors import QAEngineError  # noqa: E402
from qa_engine.pipeline import Pipeline  # noqa: E402
from rules.detector import make_rule_detector  # noqa: E402
from rules.pack import BUNDLED_PACKS, pack_files  # noqa: E402
from serve.app import create_app  # noqa: E402
from serve.settings import ServeSettings  # noqa: E402

TOKEN = "agent-console-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AUDITOR = {"Authorization": "Bearer auditor-token"}


@pytest.fixture
def packs(tmp_path):
    folder = tmp_path / "packs"
    folder.mkdir()
    for path in pack_files(BUNDLED_PACKS):
        shutil.copy(path, folder / path.name)
    return folder


def make_client(tmp_path, packs, *extra_detectors, **overrides) -> TestClient:
    settings = ServeSettings(tokens=[TOKEN], auditor_tokens=["auditor-token"],
                             warning_log=str(tmp_path / "warnings.sqlite3"), reload_interval_s=0, **overrides)
    pipeline = Pipeline([make_rule_detector([str(packs)]), EmpathyLexicalDetector(), ResolutionLexicalDetector(),
                         *extra_detectors])
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
    (row,) = client.get("/v1/audit/ignored", headers=AUDITOR).json()["ignored"]
    assert row["conversation_id"] == "c-7" and row["ignored_rules"] == ["overpromise.delivery"]
    exported = client.get("/v1/audit/ignored?format=csv", headers=AUDITOR)
    assert exported.content.startswith("\ufeff".encode()) and "明天一定发货哦" in exported.text
    assert client.get("/v1/audit/ignored").status_code == 401


def test_settings_need_tokens(tmp_path):
    with pytest.raises(ValueError, match="QA_ENGINE_TOKENS"):
        ServeSettings.load(None, environ={})
    config = tmp_path / "serve.yaml"
    config.write_text("rate_limit_per_minute: 5\n", encoding="utf-8")
    settings = ServeSettings.load(config, environ={"QA_ENGINE_TOKENS": "a, b"})
    assert settings.tokens == ["a", "b"] and settings.rate_limit_per_minute == 5


def receive(live, timeout: float = 30.0) -> dict:
    """The session's next message; a failure, not a hang, when none comes (a dead checker answers nothing)."""
    import anyio

    async def within() -> dict:
        with anyio.fail_after(timeout):
            return await live._send_rx.receive()

    message = live.portal.call(within)
    live._raise_on_close(message)
    return json.loads(message["text"])


def warned(live, seq: int, text: str = "亲，这款是全网最好的") -> list[str]:
    """Send a draft and return the rules warned about (skipping answers to older drafts)."""
    live.send_json({"type": "draft", "seq": seq, "text": text})
    while (answer := receive(live)).get("seq") != seq or answer["type"] != "warnings":
        assert answer["type"] in ("warnings", "alerts"), answer
    return [w["rule_id"] for w in answer["warnings"]]


DEEP = '{"type": "draft", "seq": 1, "text": ' + "[" * 3000 + "]" * 3000 + "}"


# fmt: off
@pytest.mark.parametrize(("raw", "code", "says"), [
    (json.dumps({"type": "draft", "seq": 1, "text": "好" * 22000}, ensure_ascii=False), "E413", "65536-byte limit"),
    ('{"type": "draft", "seq": 1e400, "text": "全网最好"}', "E422", "draft.seq"),
    (DEEP, "E422", "recursion limit"),
    ('{"type": "draft", "seq": 1, "text": "全网最好"', "E422", "Invalid JSON"),
    ('{"type": "sent", "text": ["全网最好"]}', "E422", "sent.text"),
    ('{"type": "customer"}', "E422", "type"),
    (b'{"type": "draft", "text": "\xc8\xab\xcd\xf8"}', "E400", "UTF-8"),
    ('{"type": "draft", "seq": -1, "text": "x"}', "E422", "draft.seq"),
])
# fmt: on
def test_a_bad_live_message_gets_an_error_and_the_session_keeps_warning(client, raw, code, says):
    with client.websocket_connect(f"/v1/live?token={TOKEN}") as live:
        live.send_bytes(raw) if isinstance(raw, bytes) else live.send_text(raw)
        error = receive(live)
        assert error["type"] == "error" and error["code"] == code
        assert says in json.dumps(error, ensure_ascii=False)
        assert warned(live, 2) == ["ad_law.network_best"]  # later drafts still get their warnings
        assert warned(live, 3, "全网最好") == ["ad_law.network_best"]


class Failing:
    """A detector that breaks on one draft (as a model backend might)."""

    name, version = "test.failing", "0"

    def detect(self, conversation):
        if conversation.turns[-1].text == "崩":
            raise RuntimeError("backend went away")
        return []


def test_a_draft_that_fails_to_score_is_answered_and_the_next_one_is_checked(tmp_path, packs, caplog):
    with make_client(tmp_path, packs, Failing()) as client, client.websocket_connect(f"/v1/live?token={TOKEN}") as live:
        live.send_json({"type": "draft", "seq": 1, "text": "崩"})
        assert receive(live) == {"type": "error", "code": "E500", "seq": 1,
                                 "message": "this message could not be handled; the next one will be"}
        assert warned(live, 2) == ["ad_law.network_best"]
    assert "backend went away" in caplog.text


class Gate:
    """A detector that holds scoring until released: while it holds, the event loop must be free."""

    name, version = "test.gate", "0"

    def __init__(self) -> None:
        self.entered, self.released = threading.Event(), threading.Event()

    def detect(self, conversation):
        if len(conversation.turns[-1].text) > 10_000:
            self.entered.set()
            self.released.wait(10)
        return []


def test_a_big_draft_is_scored_off_the_event_loop(tmp_path, packs):
    gate = Gate()
    big = ("亲，这款是全网最好的，明天一定发货。" * 2000)[:20_000]  # 60 KB of real text
    with make_client(tmp_path, packs, gate) as client, client.websocket_connect(f"/v1/live?token={TOKEN}") as live:
        live.send_json({"type": "draft", "seq": 1, "text": big})
        assert gate.entered.wait(30)
        started = time.perf_counter()
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.post("/v1/check", json={"draft": "全网最好"}, headers=AUTH).status_code == 200
        assert time.perf_counter() - started < 3  # not held up by the 60 KB draft (gate holds it 10 s)
        gate.released.set()
        answer = receive(live)
        assert answer["seq"] == 1 and {"ad_law.network_best", "overpromise.delivery"} <= {
            w["rule_id"] for w in answer["warnings"]}


def test_http_checks_measure_the_draft_in_utf8_bytes(tmp_path, packs):
    with make_client(tmp_path, packs, max_body_bytes=1 << 20) as client:
        response = client.post("/v1/check", json={"draft": "好" * 22000}, headers=AUTH)  # 66,000 bytes
        assert response.status_code == 422 and "E006" in json.dumps(response.json(), ensure_ascii=False)


def _delete_pack_and_reload(client, pack):
    pack.unlink()
    return asyncio.run(client.app.state.service.reload_if_changed())


def test_a_deleted_pack_is_refused_and_its_rules_keep_serving(client, packs, caplog):
    with client.websocket_connect(f"/v1/live?token={TOKEN}") as live:
        assert not _delete_pack_and_reload(client, packs / "ad_law.yaml")
        ready = client.get("/readyz").json()
        assert "pack 'ad_law'" in ready["last_reload_error"] and "category 'ad_law'" in ready["last_reload_error"]
        assert "ad_law" in ready["versions"]["rule_packs"]
        assert warned(live, 1) == ["ad_law.network_best"]  # still checked
    assert 'qa_rule_reloads_total{outcome="refused"} 1.0' in client.get("/metrics").text
    assert "removes pack 'ad_law'" in caplog.text


def test_a_category_that_disappears_is_refused(client, packs):
    pack = packs / "efficacy.yaml"
    pack.write_text(pack.read_text(encoding="utf-8").replace("category: efficacy", "category: ad_law"),
                    encoding="utf-8")
    assert not asyncio.run(client.app.state.service.reload_if_changed())
    assert "category 'efficacy'" in client.get("/readyz").json()["last_reload_error"]


def test_removing_a_pack_is_accepted_when_the_operator_allows_it(tmp_path, packs, caplog):
    with make_client(tmp_path, packs, allow_pack_removal=True) as client:
        assert _delete_pack_and_reload(client, packs / "ad_law.yaml")
        assert "rule packs removed (allow_pack_removal): ['ad_law']" in caplog.text
        ready = client.get("/readyz").json()
        assert ready["last_reload_error"] is None and "ad_law" not in ready["versions"]["rule_packs"]
        assert client.post("/v1/check", json={"draft": "全网最好"}, headers=AUTH).json()["warnings"] == []


def test_pipeline_reload_refuses_a_removed_pack_unless_allowed(packs):
    pipeline = Pipeline([make_rule_detector([str(packs)])])
    (packs / "privacy.yaml").unlink()
    with pytest.raises(QAEngineError, match=r"E011: .*removes pack 'privacy', category 'privacy'"):
        pipeline.reload()
    assert "privacy" in pipeline.versions.rule_packs
    assert "privacy" not in pipeline.reload(allow_removal=True).rule_packs


PHONE_MESSAGE = "明天一定发货，有事打我电话13812345678"


def test_audit_export_is_for_auditors_and_masked_unless_asked(client, caplog):
    client.post("/v1/check", json={"draft": PHONE_MESSAGE, "conversation_id": "c-9"}, headers=AUTH)
    client.post("/v1/sent", json={"text": PHONE_MESSAGE, "conversation_id": "c-9"}, headers=AUTH)

    for route in ("/v1/audit/ignored", "/v1/audit/ignored?format=csv", "/v1/audit/ignored?unmasked=true"):
        refused = client.get(route, headers=AUTH)  # an agent's token reads nobody's messages
        assert refused.status_code == 403 and refused.json()["error"] == "E403"
        assert "13812345678" not in refused.text
    assert client.post("/v1/check", json={"draft": "x"}, headers=AUDITOR).status_code == 403

    masked = client.get("/v1/audit/ignored", headers=AUDITOR).json()
    assert masked["personal_data"] == "masked"
    assert [r["text"] for r in masked["ignored"]] == ["明天一定发货，有事打我电话138****5678"]
    exported = client.get("/v1/audit/ignored?format=csv", headers=AUDITOR)
    assert "138****5678" in exported.text and "13812345678" not in exported.text
    assert exported.headers["x-personal-data"] == "masked"
    assert "UNMASKED" not in caplog.text

    with caplog.at_level(logging.WARNING, logger="qa_engine.serve.audit"):
        unmasked = client.get("/v1/audit/ignored?unmasked=true", headers=AUDITOR).json()
    assert unmasked["personal_data"] == "unmasked" and unmasked["ignored"][0]["text"] == PHONE_MESSAGE
    (record,) = [r for r in caplog.records if r.name == "qa_engine.serve.audit"]
    line = record.getMessage()
    assert "UNMASKED" in line and "who=token-" in line and "GET /v1/audit/ignored" in line and "rows=1" in line
    assert re.search(r"when=\d{4}-\d\d-\d\dT", line)


def test_auditor_tokens_do_not_open_live_sessions(client):
    with pytest.raises(WebSocketDisconnect) as closed:
        with client.websocket_connect("/v1/live?token=auditor-token") as live:
            live.receive_json()
    assert closed.value.code == 4401


def test_a_chunked_body_over_the_limit_gets_413(tmp_path, packs):
    def chunks():
        yield b'{"draft": "'
        for _ in range(4):
            yield b"a" * 512
        yield b'"}'

    with make_client(tmp_path, packs, max_body_bytes=1024) as client:
        response = client.post("/v1/check", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
        assert response.status_code == 413 and response.json()["error"] == "E413"
        small = client.post("/v1/check", content=iter([b'{"draft": ', b'"\xe5\x85\xa8\xe7\xbd\x91\xe6\x9c\x80\xe5\xa5\xbd"}']),
                            headers={**AUTH, "Content-Type": "application/json"})
        assert small.status_code == 200 and small.json()["warnings"][0]["evidence"] == "全网最好"


def test_docs_load_from_the_service_itself(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]", page.text)  # no external host (CDN, favicon, validator)
    assets = re.findall(r'(?:src|href)="(/[^"]+)"', page.text)
    assert {"/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"} <= set(assets)
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200 and len(served.content) > 500
    assert "javascript" in client.get("/docs-assets/swagger-ui-bundle.js").headers["content-type"]
    assert client.get("/redoc").status_code == 404  # ReDoc would load from a CDN


def test_settings_read_auditor_tokens_and_keep_roles_apart(tmp_path):
    settings = ServeSettings.load(None, environ={"QA_ENGINE_TOKENS": "a", "QA_ENGINE_AUDITOR_TOKENS": "x, y",
                                                 "QA_ENGINE_ALLOW_PACK_REMOVAL": "true"})
    assert settings.auditor_tokens == ["x", "y"] and settings.allow_pack_removal
    with pytest.raises(ValueError, match="both agent and auditor"):
        ServeSettings.load(None, environ={"QA_ENGINE_TOKENS": "a,x", "QA_ENGINE_AUDITOR_TOKENS": "x"})
