"""Request and response bodies of the HTTP API, and the WebSocket's messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

from qa_engine.errors import ErrorCode
from qa_engine.findings import Finding
from qa_engine.schema import MAX_TURN_BYTES, Role


def _within_turn_limit(text: str) -> str:
    """The scorer's limit is on UTF-8 bytes (a Chinese character is three), not characters."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_TURN_BYTES:
        raise ValueError(ErrorCode.E006.format(field="text", size=size, limit=MAX_TURN_BYTES))
    return text


TurnText = Annotated[str, AfterValidator(_within_turn_limit)]


def validation_fields(errors: Sequence[Any]) -> list[dict[str, str]]:
    """Pydantic errors as ``{"field", "message"}`` (``field`` is ``message`` for JSON that does not parse)."""
    return [{"field": ".".join(str(p) for p in err["loc"]) or "message", "message": err["msg"]} for err in errors]


class TurnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    text: TurnText


class CheckRequest(BaseModel):
    """A draft reply and, optionally, the conversation so far."""

    model_config = ConfigDict(extra="forbid")

    draft: TurnText = Field(description="the text being typed; may be empty")
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
        """The finding's warning, unvalidated: a `Finding` is validated already and of these types."""
        return cls.model_construct(start=finding.start or 0, end=finding.end or 0, evidence=finding.evidence,
                                   rule_id=finding.rule_id, category=finding.category,
                                   severity=finding.severity.value, citation=finding.citation,
                                   message=finding.message, rewrite=finding.rewrite, match=finding.match,
                                   confidence=finding.confidence)


class CheckResponse(BaseModel):
    warnings: list[Warning]
    versions: dict[str, Any]
    elapsed_ms: float


class SentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: TurnText
    conversation_id: str | None = Field(None, max_length=200)
    context: list[TurnIn] = Field(default_factory=list, max_length=500)


class SentResponse(BaseModel):
    still_violating: list[Warning]
    ignored_rules: list[str]


class LiveTurn(BaseModel):
    """WebSocket: a turn of the conversation (usually the customer's)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["turn"]
    role: Role
    text: TurnText


class LiveDraft(BaseModel):
    """WebSocket: the agent's draft as it stands; ``seq`` defaults to one past the last."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["draft"]
    seq: int | None = Field(None, ge=0, le=2**53 - 1)  # a JavaScript client's safe integers
    text: TurnText


class LiveSent(BaseModel):
    """WebSocket: the message the agent finally sent."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["sent"]
    text: TurnText


LiveMessage = TypeAdapter(Annotated[Union[LiveTurn, LiveDraft, LiveSent], Field(discriminator="type")])
