"""The service the app serves: pipeline, settings, warning log, metrics, rate limits, rule-pack reloads.

Nothing here knows HTTP: the middleware (``serve.middleware``) and the routes (``serve.routes``)
hold a `Service`, and ``serve.app`` builds one per app.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from qa_engine.errors import QAEngineError
from qa_engine.findings import Finding, Versions
from qa_engine.pipeline import Pipeline
from qa_engine.schema import Role, Turn
from rules.masking import PersonalDataMasker
from serve.metrics import ServiceMetrics
from serve.settings import ServeSettings
from serve.warning_log import WarningLog

log = logging.getLogger("qa_engine.serve")
AGENT, AUDITOR = "agent", "auditor"


@cache  # one per configured token (only admitted tokens are named)
def token_id(token: str) -> str:
    """How logs name a token without showing it."""
    return "token-" + hashlib.sha256(token.encode()).hexdigest()[:12]


class TokenBuckets:
    """Per-token rate limit: ``rate`` requests a minute, bursts up to the same number."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.refill = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()  # requests are authorised on worker threads

    def take(self, token: str) -> bool:
        with self._lock:
            now = time.monotonic()
            level, since = self._buckets.get(token, (self.capacity, now))
            level = min(self.capacity, level + (now - since) * self.refill)
            if level < 1:
                self._buckets[token] = (level, now)
                return False
            self._buckets[token] = (level - 1, now)
            return True


class Service:
    """What the app holds: the pipeline, settings, log, metrics and reload state.

    Its scoring and audit-export methods block (CPU, database): the routes call them on worker
    threads, a short draft's check excepted (see ``serve.routes``).
    """

    def __init__(self, settings: ServeSettings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.warning_log = WarningLog(settings.warning_log)
        self.metrics = ServiceMetrics()
        self.buckets = TokenBuckets(settings.rate_limit_per_minute)
        self.roles = {**{t: AGENT for t in settings.tokens}, **{t: AUDITOR for t in settings.auditor_tokens}}
        self.last_reload_error: str | None = None
        self._read_versions(pipeline.versions)
        self._signature = self._files_signature()

    def _read_versions(self, versions: Versions) -> None:
        """Hold the versions in force as a dict and as JSON; they change only when the service
        reloads the pipeline, so they are read at start and after each reload, not per request."""
        self.versions: dict[str, Any] = versions.model_dump()
        self.versions_json = json.dumps(self.versions, ensure_ascii=False, sort_keys=True)

    def check(self, draft: str, context: Sequence[Turn], role: Role = Role.AGENT) -> list[Finding]:
        findings = self.pipeline.check(draft, role=role, context=context)
        self.metrics.warnings(findings)
        return findings

    @cached_property
    def masker(self) -> PersonalDataMasker:
        return PersonalDataMasker()

    def ignored_messages(self, unmasked: bool) -> list[dict[str, Any]]:
        """The audit log's ignored-warning messages, personal data masked unless ``unmasked``."""
        rows = self.warning_log.ignored()
        return rows if unmasked else [{**row, "text": self.masker.mask(row["text"])} for row in rows]

    def _files_signature(self) -> tuple:
        signature = []
        for path in self.pipeline.watched_files():
            try:
                stat = Path(path).stat()
                signature.append((path, stat.st_mtime_ns, stat.st_size))
            except OSError:
                signature.append((path, None, None))
        return tuple(signature)

    async def reload_if_changed(self) -> bool:
        """Swap in changed rule packs. A malformed pack, or a pack or category that disappeared
        (unless ``allow_pack_removal``), is refused and the old packs keep serving."""
        signature = await asyncio.to_thread(self._files_signature)
        if signature == self._signature:
            return False
        self._signature = signature
        before = set(self.versions["rule_packs"])
        try:
            versions = await asyncio.to_thread(self.pipeline.reload, self.settings.allow_pack_removal)
        except QAEngineError as exc:
            self.last_reload_error = str(exc)
            self.metrics.reloads.labels(outcome="refused").inc()
            log.error("rule pack reload refused, previous packs still serving: %s", exc)
            return False
        self._read_versions(versions)
        self.last_reload_error = None
        self.metrics.reloads.labels(outcome="ok").inc()
        log.info("rule packs reloaded: %s", versions.rule_packs)
        if before - set(versions.rule_packs):
            log.warning("rule packs removed (allow_pack_removal): %s", sorted(before - set(versions.rule_packs)))
        return True

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reload_interval_s)
            await self.reload_if_changed()
