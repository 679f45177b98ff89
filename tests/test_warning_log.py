"""The warning log on both backends: embedded SQLite and a shared PostgreSQL that these tests
start themselves (Debian's ``postgresql`` binaries, a throwaway cluster on a unix socket), the
background writer (callers never wait on the database), flush/close, and two replicas' rows in
one audit export."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from qa_engine.findings import Finding, Severity
from serve.settings import ServeSettings
from serve.warning_log import Target, WarningLog, WarningLogError, parse_target

PG_USER = "qa_engine"


def _postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL server binaries, or initdb on the PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    initdb = found[-1] if found else shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    """A throwaway cluster listening only on a unix socket in its own temporary folder. PostgreSQL
    refuses to run as root, so as root it runs as the ``postgres`` user (made by Debian's package)
    or else ``nobody``."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.home = Path(tempfile.mkdtemp(prefix="qa-pg-"))  # short: a socket path has ~100 bytes
        self.data = self.home / "data"
        self.logfile = self.home / "server.log"
        self._as: dict = {}
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                account = pwd.getpwnam("nobody")
            self._as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
            os.chown(self.home, account.pw_uid, account.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", PG_USER, "--auth=trust", "--no-locale", "-E", "UTF8",
                  "--no-sync")
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(f"listen_addresses = ''\nunix_socket_directories = '{self.home}'\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run([str(self.bin / tool), *args], cwd=self.home, capture_output=True, text=True,
                              env={**os.environ, "LC_ALL": "C"}, timeout=120, **self._as)
        if done.returncode != 0:
            server_log = self.logfile.read_text(errors="replace") if self.logfile.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                               f"\n{server_log}")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str) -> str:
        return f"postgresql://{PG_USER}@/{database}?host={self.home}"

    def create_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def remove(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'qa-engine[postgres]')")
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
    server = PostgresServer(bin_dir)
    yield server
    server.remove()


@pytest.fixture
def pg_url(postgres) -> str:
    """A fresh database on the session's server."""
    return postgres.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "log" / "warnings.sqlite3")
    return request.getfixturevalue("pg_url")


def finding(rule_id: str, evidence: str = "全网最好") -> Finding:
    return Finding(detector="qa.rules.v1", detector_version="t", rule_id=rule_id, category="compliance",
                   severity=Severity.CRITICAL, evidence=evidence, turn=0, start=0, end=len(evidence))


BEST, DELIVERY = finding("ad_law.network_best"), finding("overpromise.delivery", "一定发货")


def record_conversation(log: WarningLog, session: str, conversation_id: str | None) -> list[str]:
    log.shown(session, conversation_id, "全网最好，一定发货", [BEST, DELIVERY], '{"engine": "t"}')
    return log.sent(session, conversation_id, "全网最好的哦", [BEST])


def rows(log: WarningLog) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "ts"} for row in log.ignored()]


def test_targets_from_the_setting():
    assert parse_target("logs/w.sqlite3") == Target("sqlite", "logs/w.sqlite3")
    assert parse_target("sqlite:///logs/w.sqlite3") == Target("sqlite", "logs/w.sqlite3")
    assert parse_target("sqlite:////var/log/w.sqlite3") == Target("sqlite", "/var/log/w.sqlite3")
    assert parse_target("sqlite:///:memory:") == Target("sqlite", ":memory:")
    pg = parse_target("postgresql://qa:secret@db.internal:5433/audit")
    assert pg == Target("postgresql", "postgresql://qa:secret@db.internal:5433/audit")
    assert pg.describe() == "PostgreSQL postgresql://db.internal:5433/audit"  # never the password
    assert parse_target("postgres://db/audit").kind == "postgresql"
    for bad, says in [("mysql://db/audit", "unsupported scheme 'mysql'"), ("sqlite://w.db", "sqlite:///"),
                      ("  ", "empty")]:
        with pytest.raises(ValueError, match=says):
            parse_target(bad)


def test_settings_refuse_an_unknown_warning_log():
    with pytest.raises(ValidationError, match="warning_log"):
        ServeSettings(tokens=["t"], warning_log="mysql://db/audit")
    settings = ServeSettings.load(None, environ={"QA_ENGINE_TOKENS": "t",
                                                "QA_ENGINE_WARNING_LOG": "postgresql://db/audit"})
    assert settings.warning_log == "postgresql://db/audit"


def test_both_backends_record_and_export_the_same(tmp_path, pg_url):
    exports = []
    for where in [str(tmp_path / "w.sqlite3"), pg_url]:
        log = WarningLog(where)
        try:
            assert record_conversation(log, "s-1", "c-1") == ["ad_law.network_best"]
            assert log.sent("s-2", None, "您好", []) == []  # nothing warned, nothing ignored
            log.shown("s-3", "c-3", "一定发货", [DELIVERY], "{}")
            assert log.sent("s-3", "c-3", "一定发货哦", [DELIVERY]) == ["overpromise.delivery"]
            exported = log.ignored()
        finally:
            log.close()
        assert all(isinstance(row["ts"], float) and abs(row["ts"] - time.time()) < 60 for row in exported)
        exports.append([{k: v for k, v in row.items() if k != "ts"} for row in exported])
    assert exports[0] == exports[1] == [
        {"session": "s-1", "conversation_id": "c-1", "text": "全网最好的哦",
         "ignored_rules": ["ad_law.network_best"]},
        {"session": "s-3", "conversation_id": "c-3", "text": "一定发货哦",
         "ignored_rules": ["overpromise.delivery"]},
    ]


def test_rows_survive_close_and_reopen(target):
    log = WarningLog(target)
    record_conversation(log, "s-1", "c-1")
    log.close()  # flushes what was queued
    with pytest.raises(WarningLogError, match="closed"):
        log.shown("s-2", None, "d", [BEST], "{}")
    reopened = WarningLog(target)
    try:
        assert rows(reopened) == [{"session": "s-1", "conversation_id": "c-1", "text": "全网最好的哦",
                                   "ignored_rules": ["ad_law.network_best"]}]
    finally:
        reopened.close()


def _lock_database(target: str):
    """Another connection that holds the log's tables locked until released."""
    if target.startswith("postgresql://"):
        import psycopg

        holder = psycopg.connect(target)
        holder.execute("LOCK TABLE warnings_shown, messages_sent IN ACCESS EXCLUSIVE MODE")
    else:
        holder = sqlite3.connect(target, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_callers_never_wait_on_a_locked_database(target):
    log = WarningLog(target)
    try:
        holder = _lock_database(target)
        started = time.perf_counter()
        assert record_conversation(log, "s-1", "c-1") == ["ad_law.network_best"]
        assert time.perf_counter() - started < 0.5  # queued: the database is locked for seconds yet
        with pytest.raises(WarningLogError, match=r"3 warning-log row\(s\) not yet written"):
            log.flush(timeout=1.0)
        holder.rollback()
        holder.close()
        log.flush()
        assert [row["conversation_id"] for row in log.ignored()] == ["c-1"]
    finally:
        log.close()


def test_writes_survive_a_postgresql_restart(postgres, pg_url):
    log = WarningLog(pg_url)
    try:
        record_conversation(log, "s-1", "c-1")
        log.flush()
        postgres.stop()
        try:
            record_conversation(log, "s-2", "c-2")  # the server is down: queued, retried
            with pytest.raises(WarningLogError, match="not yet written"):
                log.flush(timeout=0.5)
        finally:
            postgres.start()
        log.flush()  # the writer reconnected
        assert [row["conversation_id"] for row in log.ignored()] == ["c-1", "c-2"]
    finally:
        log.close()


def test_close_reports_rows_it_could_not_write(postgres, pg_url, caplog):
    log = WarningLog(pg_url)
    postgres.stop()
    try:
        record_conversation(log, "s-1", "c-1")
        with pytest.raises(WarningLogError, match=r"closed with 3 row\(s\) unwritten to PostgreSQL"):
            log.close(timeout=0.5)
    finally:
        postgres.start()
    assert "3 row(s) unwritten" in caplog.text


def test_two_replicas_share_one_postgresql_log(pg_url):
    import psycopg

    first = WarningLog(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as admin:  # drop the first replica's connection:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"  # its rows land late
                      " WHERE datname = current_database() AND pid <> pg_backend_pid()")
    second = WarningLog(pg_url)
    try:
        record_conversation(first, "s-0", "c-0")
        record_conversation(second, "s-1", "c-1")
        second.flush()
        for log in (first, second):  # either replica's export sees both, in the order they happened
            assert [row["conversation_id"] for row in log.ignored()] == ["c-0", "c-1"]
    finally:
        first.close()
        second.close()


def test_replicas_starting_together_create_the_schema_once(pg_url):
    errors: list[BaseException] = []
    logs: list[WarningLog] = []

    def open_log() -> None:
        try:
            logs.append(WarningLog(pg_url))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=open_log) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for log in logs:
        log.close()
    assert errors == []


def test_unreachable_postgresql_is_a_clear_error(postgres):
    with pytest.raises(WarningLogError, match="cannot open the warning log \\(PostgreSQL postgresql:///nope"):
        WarningLog(postgres.url("nope"))


def test_two_app_replicas_one_audit_export(pg_url, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from qa_engine.pipeline import Pipeline
    from rules.detector import make_rule_detector
    from serve.app import create_app

    token, auditor_token = "t-1", "a-1"
    auth, auditor = {"Authorization": f"Bearer {token}"}, {"Authorization": f"Bearer {auditor_token}"}
    settings = ServeSettings(tokens=[token], auditor_tokens=[auditor_token], warning_log=pg_url, reload_interval_s=0)
    apps = [create_app(settings, Pipeline([make_rule_detector()])) for _ in range(2)]
    with TestClient(apps[0]) as first:
        with TestClient(apps[1]) as second:
            for n, client in enumerate([first, second]):
                conversation = {"conversation_id": f"c-{n}"}
                client.post("/v1/check", json={"draft": "明天一定发货", **conversation}, headers=auth)
                sent = client.post("/v1/sent", json={"text": "明天一定发货哦", **conversation}, headers=auth)
                assert sent.json()["ignored_rules"] == ["overpromise.delivery"]
        # the second replica has shut down, its rows flushed; the first exports both
        exported = first.get("/v1/audit/ignored", headers=auditor).json()["ignored"]
        assert [(row["conversation_id"], row["ignored_rules"]) for row in exported] == [
            ("c-0", ["overpromise.delivery"]), ("c-1", ["overpromise.delivery"])]
        assert "c-1" in first.get("/v1/audit/ignored?format=csv", headers=auditor).text
