"""Result types (floor: qa_engine; no I/O).

One `Finding` type serves every detector, rule-based or model-based (presidio's
RecognizerResult): violations, positive signals (an apology) and conversation labels
(resolved / escalated) all carry the same provenance, so reports, the scorecard and the
live service read one shape.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Severity(str, Enum):
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    INFO = "info"


class FindingKind(str, Enum):
    VIOLATION = "violation"  # counts against the agent
    SIGNAL = "signal"        # positive evidence (an apology, a reassurance)
    LABEL = "label"          # a conversation-level judgement (resolution, empathy)


class Finding(BaseModel):
    """One piece of evidence about a conversation.

    ``turn`` indexes ``conversation.turns``; ``start``/``end`` are character offsets into
    that turn's *original* text (``None`` for conversation-level labels), and ``evidence``
    is exactly ``text[start:end]``.
    """

    model_config = ConfigDict(frozen=True)

    rule_id: str
    category: str
    kind: FindingKind = FindingKind.VIOLATION
    severity: Severity = Severity.INFO
    turn: int | None = None
    start: int | None = None
    end: int | None = None
    evidence: str = ""
    label: str | None = None
    citation: str | None = None
    message: str = ""
    rewrite: str | None = None
    match: str | None = None          # literal | pinyin | homophone | regex | cue
    confidence: float = 1.0
    detector: str
    detector_version: str
    suppressed_by: str | None = None  # set only in explain mode: why the hit does not count

    @property
    def sort_key(self) -> tuple[Any, ...]:
        return (-1 if self.turn is None else self.turn, self.start or 0, self.end or 0, self.rule_id)


class ServiceMetrics(BaseModel):
    """Service-standard measurements; time metrics are ``None`` when timestamps are missing or out of order."""

    model_config = ConfigDict(frozen=True)

    first_response_s: float | None = None
    first_response_turn: int | None = None
    greeting_s: float | None = None
    greeted: bool = False
    longest_agent_gap_s: float | None = None
    longest_agent_gap_turn: int | None = None
    closing_invite: bool = False
    bot_failures: int = 0
    handed_over: bool = False
    handover_turn: int | None = None
    timestamps_out_of_order: bool = False  # then every time metric is None (unknown), not measured


class Versions(BaseModel):
    """Provenance of one result: the same input and versions give the same result."""

    model_config = ConfigDict(frozen=True)

    engine: str
    scorecard: str
    lexicons: str
    detectors: dict[str, str]
    rule_packs: dict[str, str] = {}
    #: model artefacts (``qa_zh_char: "0.1.0 sha256:…"``) the detectors loaded; left out of dumps
    #: when none (rules-only results stay as before, and Parquet has no empty struct to store)
    models: dict[str, str] = Field(default_factory=dict, exclude_if=lambda models: not models)


class ScoreReport(BaseModel):
    """The scored conversation."""

    model_config = ConfigDict(frozen=True)

    conversation_id: str
    agent_id: str | None = None
    team: str | None = None
    channel: str | None = None
    #: who the customer is (``Conversation.customer_id`` or ``metadata.customer_id``): first-contact resolution
    #: is judged across conversations from it (`qa_engine.tables.first_contact_resolution`), never on one alone
    customer_id: str | None = None
    start_time: datetime | None = None
    score: float
    passed: bool
    auto_fail_reasons: list[str]
    sections: dict[str, float | None]
    resolution: str | None = None
    empathy: str | None = None
    metrics: ServiceMetrics
    findings: list[Finding]
    versions: Versions

    @property
    def violations(self) -> list[Finding]:
        return [f for f in self.findings if f.kind is FindingKind.VIOLATION]
