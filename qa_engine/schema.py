"""Transcript schema (floor: qa_engine; no I/O, no Ray, no HTTP).

A conversation is what every loader produces and every detector reads. Validation turns
pydantic's errors into coded `RecordError`s that name the offending field, so loaders can
quarantine a record with a reason a person can act on.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from qa_engine.errors import ErrorCode, RecordError

MAX_TURN_BYTES = 64 * 1024


class Role(str, Enum):
    """Who spoke a turn. Only agent (and bot) speech can violate the agent-side rules."""

    AGENT = "agent"
    CUSTOMER = "customer"
    BOT = "bot"
    SYSTEM = "system"


class Turn(BaseModel):
    """One utterance."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    text: str
    timestamp: datetime | None = None

    @field_validator("text")
    @classmethod
    def _text_within_limit(cls, text: str) -> str:
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_TURN_BYTES:
            raise ValueError(f"E006 {size}")
        return text


class Conversation(BaseModel):
    """One customer-service conversation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    conversation_id: str = Field(min_length=1)
    channel: str | None = None
    agent_id: str | None = None
    team: str | None = None
    start_time: datetime | None = None
    turns: tuple[Turn, ...]
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("turns")
    @classmethod
    def _has_turns(cls, turns: tuple[Turn, ...]) -> tuple[Turn, ...]:
        if not turns:
            raise ValueError("E005")
        return turns

    @model_validator(mode="after")
    def _comparable_times(self) -> Conversation:
        times = [t.timestamp for t in self.turns if t.timestamp is not None]
        if self.start_time is not None:
            times.append(self.start_time)
        if len({t.tzinfo is None for t in times}) > 1:
            raise ValueError("E003 timestamps mix values with and without a time zone")
        return self

    @property
    def has_timestamps(self) -> bool:
        return all(turn.timestamp is not None for turn in self.turns)


def _field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def parse_conversation(record: Any) -> Conversation:
    """Validate a decoded record (a dict) into a Conversation.

    Raises:
        RecordError: with the code and the dotted path of the first bad field,
            e.g. ``turns[3].role``.
    """
    if not isinstance(record, dict):
        raise RecordError(ErrorCode.E003, field="<record>", detail=f"expected an object, got {type(record).__name__}")
    try:
        return Conversation.model_validate(record)
    except ValidationError as exc:
        raise _record_error(exc) from None


def _record_error(exc: ValidationError) -> RecordError:
    err = exc.errors(include_url=False)[0]
    field = _field_path(err["loc"])
    message = str(err.get("msg", ""))
    if err["type"] == "missing":
        return RecordError(ErrorCode.E002, field=field)
    if field.endswith(".role") and err["type"] == "enum":
        return RecordError(ErrorCode.E004, role=err.get("input"), field=field)
    if "E005" in message:
        return RecordError(ErrorCode.E005)
    if "E006" in message:
        size = int(message.rsplit(" ", 1)[-1])
        return RecordError(ErrorCode.E006, field=field, size=size, limit=MAX_TURN_BYTES)
    if "E003" in message:
        return RecordError(ErrorCode.E003, field=field or "turns", detail=message.split("E003 ", 1)[1])
    return RecordError(ErrorCode.E003, field=field, detail=message)
