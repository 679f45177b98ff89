"""The live service's request path: where checks run, how draft bodies are read, who is let in,
how the warning log batches its writes, and the module layering of ``serve``."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

import serve.warning_log as warning_log  # noqa: E402
from qa_engine.pipeline import Pipeline  # noqa: E402
from rules.detector import make_rule_detector  # noqa: E402
from serve.app import create_app  # noqa: E402
from serve.routes import INLINE_CHARS  # noqa: E402
from serve.settings import ServeSettings  # noqa: E402

TOKEN = "path-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Threads:
    """A detector that notes the thread each draft is scored on."""

    name, version = "test.threads", "0"

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def detect(self, conversation):
        self.seen[conversation.turns[-1].text] = threading.get_ident()
        return []


@pytest.fixture
def threads():
    return Threads()


@pytest.fixture
def client(tmp_path, rule_detector, threads):
    settings = ServeSettings(tokens=[TOKEN], auditor_tokens=["auditor"], warning_log=str(tmp_path / "w.sqlite3"),
                             reload_interval_s=0)
    with TestClient(create_app(settings, Pipeline([rule_detector, threads]))) as client:
        yield client


def loop_thread(client) -> int:
    async def ident() -> int:
        return threading.get_ident()

    return client.portal.call(ident)


def test_a_short_draft_is_checked_on_the_event_loop_a_long_one_on_the_thread_pool(client, threads):
    short, long = "全网最好", "好" * (INLINE_CHARS + 1)
    for draft in (short, long):
        assert client.post("/v1/check", json={"draft": draft}, headers=AUTH).status_code == 200
    assert threads.seen[short] == loop_thread(client)
    assert threads.seen[long] != loop_thread(client)
    context = [{"role": "customer", "text": "在吗"}] * 9  # a long context counts too
    client.post("/v1/check", json={"draft": "在的", "context": context}, headers=AUTH)
    assert threads.seen["在的"] != loop_thread(client)


def test_draft_bodies_must_be_json_and_are_documented(client):
    as_text = client.post("/v1/check", content=b'{"draft": "x"}', headers={**AUTH, "Content-Type": "text/plain"})
    assert as_text.status_code == 422 and as_text.json()["fields"][0]["field"] == "body"
    broken = client.post("/v1/sent", content=b'{"text": ', headers={**AUTH, "Content-Type": "application/json"})
    assert broken.status_code == 422 and "Invalid JSON" in broken.json()["fields"][0]["message"]
    vendor = client.post("/v1/check", content='{"draft": "全网最好"}'.encode(),
                         headers={**AUTH, "Content-Type": "application/vnd.qa+json; charset=utf-8"})
    assert [w["rule_id"] for w in vendor.json()["warnings"]] == ["ad_law.network_best"]
    wrong_method = client.get("/v1/check", headers=AUTH)
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    paths = client.get("/openapi.json").json()["paths"]
    for path, request, answer in (("/v1/check", "CheckRequest", "CheckResponse"),
                                  ("/v1/sent", "SentRequest", "SentResponse")):
        operation = paths[path]["post"]
        assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(request)
        assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(answer)


def test_every_v1_path_needs_a_token_and_others_none(client):
    assert client.post("/v1/not-a-route", json={}).status_code == 401  # closed by default
    assert client.post("/v1/not-a-route", json={}, headers=AUTH).status_code == 404
    assert client.get("/v1/audit/not-a-route", headers=AUTH).status_code == 403
    assert client.post(f"/v1/check?token={TOKEN}", json={"draft": "x"}).status_code == 200  # as the console does
    assert client.get("/healthz").status_code == 200 and client.get("/not-a-route").status_code == 404


def test_the_warning_log_writes_what_gathered_in_one_transaction_and_flush_does_not_wait(tmp_path, monkeypatch):
    monkeypatch.setattr(warning_log, "BATCH_WINDOW_S", 30.0)
    log = warning_log.WarningLog(tmp_path / "w.sqlite3")
    writes = []
    write = log._db.write
    monkeypatch.setattr(log._db, "write", lambda rows: (writes.append(len(rows)), write(rows)))
    findings = Pipeline([make_rule_detector()]).check("全网最好")
    for n in range(50):
        log.shown(f"s-{n}", None, "全网最好", findings, "{}")
    done = threading.Thread(target=log.flush, kwargs={"timeout": 10.0})
    done.start()
    done.join(10.0)
    assert not done.is_alive() and writes == [50]  # all 50 rows in one write, at once when asked
    log.close()


def test_live_sessions_do_not_import_the_app():
    code = "import sys, serve.live; assert 'serve.app' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_answers_match_their_documented_models(client):
    from serve.models import CheckResponse, SentResponse

    check = client.post("/v1/check", json={"draft": "亲，这款是全网最好的"}, headers=AUTH)
    assert CheckResponse.model_validate(check.json()).warnings[0].rule_id == "ad_law.network_best"
    sent = client.post("/v1/sent", json={"text": "亲，这款是全网最好的"}, headers=AUTH)
    assert SentResponse.model_validate(json.loads(sent.content)).ignored_rules == ["ad_law.network_best"]
