"""Request and response bodies of the HTTP API (and the WebSocket's warning shape)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from qa_engine.findings import Finding
from qa_engine.schema import MAX_TURN_BYTES, Role


class TurnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    text: str = Field(max_length=MAX_TURN_BYTES)


class CheckRequest(BaseModel):
    """A draft reply and, optionally, the conversation so far."""

    model_config = ConfigDict(extra="forbid")

    draft: str = Field(max_length=MAX_TURN_BYTES, description="the text being typed; may be empty")
    context: list[TurnIn] = Field(default_factory=list, max_length=500)
    conversation_id: str | None = Field(None, max_length=200)
    role: Role = Role.AGENT


class Warning(BaseModel):
    """One violation in the draft, with what the agent needs to fix it."""

    start: int
    end: int
    evidence: str
    rule_id: str
    category: str
    severity: str
    citation: str | None
    message: str
    rewrite: str | None
    match: str | None
    confidence: float

    @classmethod
    def of(cls, finding: Finding) -> Warning:
        return cls(start=finding.start or 0, end=finding.end or 0, evidence=finding.evidence,
                   rule_id=finding.rule_id, category=finding.category, severity=finding.severity.value,
                   citation=finding.citation, message=finding.message, rewrite=finding.rewrite,
                   match=finding.match, confidence=finding.confidence)


class CheckResponse(BaseModel):
    warnings: list[Warning]
    versions: dict[str, Any]
    elapsed_ms: float


class SentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=MAX_TURN_BYTES)
    conversation_id: str | None = Field(None, max_length=200)
    context: list[TurnIn] = Field(default_factory=list, max_length=500)


class SentResponse(BaseModel):
    still_violating: list[Warning]
    ignored_rules: list[str]
