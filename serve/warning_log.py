"""The warning-event log: each warning shown, and whether the message finally sent still
violated — so auditors can export "warnings ignored". SQLite by default."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from qa_engine.findings import Finding

SCHEMA = """
CREATE TABLE IF NOT EXISTS warnings_shown (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, session TEXT NOT NULL, conversation_id TEXT,
    rule_id TEXT NOT NULL, category TEXT NOT NULL, severity TEXT NOT NULL, evidence TEXT NOT NULL,
    draft TEXT NOT NULL, versions TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages_sent (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, session TEXT NOT NULL, conversation_id TEXT,
    text TEXT NOT NULL, warned_rules TEXT NOT NULL, violating_rules TEXT NOT NULL,
    ignored_rules TEXT NOT NULL
);
"""


class WarningLog:
    """Append-only log; one connection guarded by a lock (the service is one process)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        # WAL + NORMAL: a commit is an append, not an fsync per warning (the log is an audit
        # trail of a live service; losing the last instant's rows on power loss is acceptable)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._warned: dict[str, set[str]] = {}  # session → rules warned since its last sent message

    def shown(self, session: str, conversation_id: str | None, draft: str, findings: list[Finding],
              versions: str) -> None:
        if not findings:
            return
        now = time.time()
        with self._lock, self._db:
            self._db.executemany(
                "INSERT INTO warnings_shown (ts, session, conversation_id, rule_id, category, severity, evidence,"
                " draft, versions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(now, session, conversation_id, f.rule_id, f.category, f.severity.value, f.evidence, draft, versions)
                 for f in findings])
            self._warned.setdefault(session, set()).update(f.rule_id for f in findings)

    def sent(self, session: str, conversation_id: str | None, text: str, findings: list[Finding]) -> list[str]:
        """Record a sent message; returns the rules that were warned about and still violated."""
        violating = sorted({f.rule_id for f in findings})
        with self._lock, self._db:
            warned = sorted(self._warned.pop(session, set()))
            ignored = sorted(set(warned) & set(violating))
            self._db.execute(
                "INSERT INTO messages_sent (ts, session, conversation_id, text, warned_rules, violating_rules,"
                " ignored_rules) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (time.time(), session, conversation_id, text, json.dumps(warned), json.dumps(violating),
                 json.dumps(ignored)))
        return ignored

    def ignored(self) -> list[dict[str, Any]]:
        """Sent messages that still violated a rule the agent had been warned about."""
        with self._lock:
            rows = self._db.execute(
                "SELECT ts, session, conversation_id, text, ignored_rules FROM messages_sent"
                " WHERE ignored_rules != '[]' ORDER BY id").fetchall()
        return [{"ts": ts, "session": s, "conversation_id": c, "text": t, "ignored_rules": json.loads(r)}
                for ts, s, c, t, r in rows]

    def close(self) -> None:
        self._db.close()
