"""The warning-event log: each warning shown, and whether the message finally sent still
violated — so auditors can export "warnings ignored".

Where it lives is one setting, ``warning_log``: a file path or ``sqlite:///path`` is an embedded
SQLite file (the default; one per process), ``postgresql://…`` a PostgreSQL database that every
replica of the service shares, so one export sees them all. Both hold the same two tables and
give the same export.

Writes never wait on the database: the service calls the log from its event loop, so ``shown``
and ``sent`` only update the in-memory "rules warned since the session's last message" and queue
the rows; a background thread writes what has queued in ``BATCH_WINDOW_S`` (at once when
someone flushes or closes the log) in one transaction, and retries with backoff (reconnecting)
while the database is unreachable, so a restart of the shared database loses nothing. ``flush`` waits for the rows queued so far; ``close`` flushes and stops, and says
how many rows it could not write rather than dropping them silently.

The warned-rules state is per process: a conversation's checks and its sent message must reach
the same replica (a live WebSocket session always does; over HTTP route by ``conversation_id``).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from qa_engine.findings import Finding

log = logging.getLogger("qa_engine.serve.warning_log")

COLUMNS = {
    "warnings_shown": ("ts", "session", "conversation_id", "rule_id", "category", "severity", "evidence", "draft",
                       "versions"),
    "messages_sent": ("ts", "session", "conversation_id", "text", "warned_rules", "violating_rules", "ignored_rules"),
}
# {id}: the dialect's auto-increment key; {float}: an 8-byte float (PostgreSQL's REAL is 4 bytes)
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS warnings_shown (
    id {id}, ts {float} NOT NULL, session TEXT NOT NULL, conversation_id TEXT,
    rule_id TEXT NOT NULL, category TEXT NOT NULL, severity TEXT NOT NULL, evidence TEXT NOT NULL,
    draft TEXT NOT NULL, versions TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS messages_sent (
    id {id}, ts {float} NOT NULL, session TEXT NOT NULL, conversation_id TEXT,
    text TEXT NOT NULL, warned_rules TEXT NOT NULL, violating_rules TEXT NOT NULL,
    ignored_rules TEXT NOT NULL)""",
)
# in time order: ids follow commit order, which interleaves replicas' batches
IGNORED_QUERY = ("SELECT ts, session, conversation_id, text, ignored_rules FROM messages_sent"
                 " WHERE ignored_rules != '[]' ORDER BY ts, id")
# replicas starting together must not race on CREATE TABLE IF NOT EXISTS (PostgreSQL's catalog)
SCHEMA_LOCK_KEY = 0x7161_656E_6769_6E65  # "qaengine"

FLUSH_TIMEOUT_S = 10.0
BATCH_WINDOW_S = 0.05  # rows gather this long into one transaction (a commit per request would cost the service CPU)
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 5.0

Row = tuple[str, tuple[Any, ...]]  # (table, values in COLUMNS[table] order)


class WarningLogError(RuntimeError):
    """The log cannot be opened, or rows could not be written in time."""


@dataclass(frozen=True)
class Target:
    """Where the log lives: ``kind`` and the SQLite path or the PostgreSQL URL."""

    kind: Literal["sqlite", "postgresql"]
    location: str

    def describe(self) -> str:
        """For messages and logs: a PostgreSQL URL without its user and password."""
        if self.kind == "sqlite":
            return f"SQLite {self.location}"
        url = urlsplit(self.location)
        return f"PostgreSQL {url.scheme}://{url.hostname or ''}{f':{url.port}' if url.port else ''}{url.path}"


def parse_target(value: str) -> Target:
    """``path`` or ``sqlite:///path`` (``sqlite:////abs/path``, ``sqlite:///:memory:``) → SQLite;
    ``postgresql://…`` or ``postgres://…`` → PostgreSQL. Anything else is refused."""
    if not value.strip():
        raise ValueError("warning_log is empty: give a file path, sqlite:///path or postgresql://…")
    if value.startswith(("postgresql://", "postgres://")):
        return Target("postgresql", value)
    if value.startswith("sqlite://"):
        path = value[len("sqlite://"):]
        if not path.startswith("/") or len(path) == 1:
            raise ValueError(f"warning_log {value!r}: a SQLite URL is sqlite:///relative/path or sqlite:////abs/path")
        return Target("sqlite", path[1:])
    if "://" in value:
        scheme = value.split("://", 1)[0]
        raise ValueError(f"warning_log: unsupported scheme {scheme!r}; give a file path, sqlite:///path or "
                         "postgresql://…")
    return Target("sqlite", value)


class _Database:
    """One DB-API connection (sqlite3 or psycopg) behind a lock, opened again after it breaks."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._connect: Callable[[], Any]
        if target.kind == "sqlite":
            self._connect, placeholder = self._sqlite, "?"
        else:
            self._connect, placeholder = self._postgresql, "%s"
        self._insert = {table: f"INSERT INTO {table} ({', '.join(cols)})"
                               f" VALUES ({', '.join([placeholder] * len(cols))})" for table, cols in COLUMNS.items()}
        self._lock = threading.Lock()
        try:
            self._conn: Any = self._connect()
        except Exception as exc:
            raise WarningLogError(f"cannot open the warning log ({target.describe()}): {exc}") from exc

    def _sqlite(self) -> sqlite3.Connection:
        if self.target.location != ":memory:":
            Path(self.target.location).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.target.location, check_same_thread=False)
        # WAL + NORMAL: a commit is an append, not an fsync per warning (the log is an audit
        # trail of a live service; losing the last instant's rows on power loss is acceptable)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        for statement in SCHEMA:
            conn.execute(statement.format(id="INTEGER PRIMARY KEY", float="REAL"))
        conn.commit()
        return conn

    def _postgresql(self) -> Any:
        try:
            import psycopg
        except ImportError:
            raise WarningLogError("warning_log is a PostgreSQL URL but psycopg is not installed: "
                                  "pip install 'qa-engine[postgres]'") from None
        conn = psycopg.connect(self.target.location, connect_timeout=10)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            for statement in SCHEMA:
                conn.execute(statement.format(id="BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                                              float="DOUBLE PRECISION"))
        return conn

    def write(self, rows: list[Row]) -> None:
        """All ``rows`` in one transaction, in order."""
        with self._lock:
            conn = self._open()
            try:
                cursor = conn.cursor()
                for table, group in groupby(rows, key=itemgetter(0)):
                    cursor.executemany(self._insert[table], [values for _, values in group])
                conn.commit()
            except Exception:
                self._abandon_transaction()
                raise

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with self._lock:
            conn = self._open()
            try:
                cursor = conn.cursor()
                cursor.execute(sql)
                rows = cursor.fetchall()
                conn.commit()  # end the read transaction (PostgreSQL would otherwise keep it open)
                return rows
            except Exception:
                self._abandon_transaction()
                raise

    def _open(self) -> Any:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _abandon_transaction(self) -> None:
        """Roll back; a connection that cannot even do that (the server went away) is reopened next time."""
        try:
            self._conn.rollback()
        except Exception:
            self.close()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


class WarningLog:
    """Append-only log written by a background thread; see the module docstring."""

    def __init__(self, target: str | Path) -> None:
        self.target = parse_target(str(target))
        self._db = _Database(self.target)
        self._cond = threading.Condition()
        self._queue: list[Row] = []
        self._queued = 0  # rows ever queued
        self._written = 0  # rows ever committed (the queue is FIFO, so these are the first ones)
        self._closing = False
        self._flushing = 0  # callers waiting in flush: the writer does not let a batch gather
        self._give_up = threading.Event()
        self._warned: dict[str, set[str]] = {}  # session → rules warned since its last sent message
        self._writer = threading.Thread(target=self._write_queued, name="warning-log-writer", daemon=True)
        self._writer.start()

    def shown(self, session: str, conversation_id: str | None, draft: str, findings: list[Finding],
              versions: str) -> None:
        if not findings:
            return
        now = time.time()
        rows = [("warnings_shown", (now, session, conversation_id, f.rule_id, f.category, f.severity.value,
                                    f.evidence, draft, versions)) for f in findings]
        with self._cond:
            self._enqueue(rows)
            self._warned.setdefault(session, set()).update(f.rule_id for f in findings)

    def sent(self, session: str, conversation_id: str | None, text: str, findings: list[Finding]) -> list[str]:
        """Record a sent message; returns the rules that were warned about and still violated."""
        violating = sorted({f.rule_id for f in findings})
        with self._cond:
            warned = sorted(self._warned.pop(session, set()))
            ignored = sorted(set(warned) & set(violating))
            self._enqueue([("messages_sent", (time.time(), session, conversation_id, text, json.dumps(warned),
                                              json.dumps(violating), json.dumps(ignored)))])
        return ignored

    def ignored(self) -> list[dict[str, Any]]:
        """Sent messages that still violated a rule the agent had been warned about (this log's own
        queued rows are written first; other replicas' as soon as their writers commit them)."""
        self.flush()
        return [{"ts": ts, "session": s, "conversation_id": c, "text": t, "ignored_rules": json.loads(r)}
                for ts, s, c, t, r in self._db.query(IGNORED_QUERY)]

    def flush(self, timeout: float = FLUSH_TIMEOUT_S) -> None:
        """Wait until every row queued before this call is committed; WarningLogError after ``timeout``."""
        with self._cond:
            target = self._queued
            self._flushing += 1
            self._cond.notify_all()
            try:
                written = self._cond.wait_for(lambda: self._written >= target, timeout)
            finally:
                self._flushing -= 1
            if not written:
                raise WarningLogError(f"{target - self._written} warning-log row(s) not yet written to "
                                      f"{self.target.describe()} after {timeout:g} s (the writer keeps retrying)")

    def close(self, timeout: float = FLUSH_TIMEOUT_S) -> None:
        """Flush, then stop the writer. Rows it could not write by ``timeout`` are reported, not dropped silently."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        try:
            self.flush(timeout)
        except WarningLogError:
            self._give_up.set()
            self._writer.join()
            lost = self._queued - self._written
            log.error("warning log closed with %d row(s) unwritten to %s", lost, self.target.describe())
            raise WarningLogError(f"warning log closed with {lost} row(s) unwritten to {self.target.describe()}") \
                from None
        finally:
            self._writer.join()
            self._db.close()

    def _enqueue(self, rows: list[Row]) -> None:
        """Queue rows (the caller holds ``self._cond``)."""
        if self._closing:
            raise WarningLogError("the warning log is closed")
        if not self._queue:
            self._cond.notify_all()  # the writer waits for a first row only
        self._queue.extend(rows)
        self._queued += len(rows)

    def _write_queued(self) -> None:
        """The writer thread: take everything queued, write it in one transaction, retry until it is in."""
        batch: list[Row] = []
        delay = RETRY_FIRST_S
        while True:
            if not batch:
                with self._cond:
                    self._cond.wait_for(lambda: self._queue or self._closing)
                    if not self._queue:
                        return  # closing, and everything is written
                    self._cond.wait_for(lambda: self._flushing or self._closing, BATCH_WINDOW_S)
                    batch, self._queue = self._queue, []
            try:
                self._db.write(batch)
            except Exception as exc:
                log.error("cannot write %d row(s) to the warning log (%s), retrying in %.1f s: %s",
                          len(batch), self.target.describe(), delay, exc)
                if self._give_up.wait(delay):
                    return
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            with self._cond:
                self._written += len(batch)
                self._cond.notify_all()
            batch, delay = [], RETRY_FIRST_S
