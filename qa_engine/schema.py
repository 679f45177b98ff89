"""Transcript schema (floor: qa_engine; no I/O, no Ray, no HTTP).

A conversation is what every loader produces and every detector reads. Validation turns
pydantic's errors into coded `RecordError`s that name the offending field, so loaders can
quarantine a record with a reason a person can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from qa_engine.errors import ErrorCode, RecordError

MAX_TURN_BYTES = 64 * 1024
TURN_EXTRA = "turn_extra"  # metadata key of the turns' fields outside the schema (a list aligned with turns)


@dataclass(frozen=True)
class Limits:
    """Caps on one input record; a record over any of them is quarantined, never scored.

    Set in the run config's ``limits:`` section or with the ``score`` options of the same names.
    """

    max_turn_bytes: int = MAX_TURN_BYTES      # one turn's text, UTF-8 bytes (E006)
    max_turns: int = 2_000                    # turns in one conversation (E043)
    max_conversation_chars: int = 500_000     # characters of all turn texts of one conversation (E043)
    max_record_bytes: int = 4 * 1024 * 1024   # one JSONL line, CSV row or Parquet row (E042)
    max_depth: int = 64                       # nesting of objects and lists in one record (E045)


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
    def _text_within_limit(cls, text: str, info: ValidationInfo) -> str:
        limit = (info.context or {}).get("max_turn_bytes", MAX_TURN_BYTES)
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise ValueError(f"E006 {size} {limit}")
        return text


class Conversation(BaseModel):
    """One customer-service conversation.

    ``customer_id`` (optional) identifies the customer across conversations (first-contact
    resolution). Fields of an input record outside this schema are kept under ``metadata``
    (a turn's under ``metadata["turn_extra"]``, one object per turn) unless parsing is strict.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    conversation_id: str = Field(min_length=1)
    channel: str | None = None
    agent_id: str | None = None
    team: str | None = None
    customer_id: str | None = None
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


def field_path(loc: tuple[Any, ...]) -> str:
    """``("turns", 3, "role")`` → ``turns[3].role``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def parse_conversation(record: Any, limits: Limits = Limits(), strict: bool = False) -> Conversation:
    """Validate a decoded record (a dict) into a Conversation.

    Fields outside the schema go under ``metadata`` (``strict``: refused, E044); a record over
    the turn-count or character ``limits`` is refused before it is validated (E043).

    Raises:
        RecordError: with the code and the dotted path of the first bad field,
            e.g. ``turns[3].role``.
    """
    if not isinstance(record, dict):
        raise RecordError(ErrorCode.E003, field="<record>", detail=f"expected an object, got {type(record).__name__}")
    record = _fold_unknown_fields(record, strict)
    _check_size(record, limits)
    try:
        return Conversation.model_validate(record, context={"max_turn_bytes": limits.max_turn_bytes})
    except ValidationError as exc:
        raise _record_error(exc) from None


def _fold_unknown_fields(record: dict[str, Any], strict: bool) -> dict[str, Any]:
    """The record with its fields outside the schema moved under ``metadata``.

    Raises:
        RecordError: E044 for the first unknown field when ``strict``; E003 when ``metadata``
            is not an object or already holds a different value under an unknown field's name.
    """
    unknown = [key for key in record if key not in Conversation.model_fields]
    turns = record.get("turns")
    turn_extra: list[dict[str, Any]] = []
    if isinstance(turns, (list, tuple)):
        turn_extra = [{k: v for k, v in t.items() if k not in Turn.model_fields} if isinstance(t, dict) else {}
                      for t in turns]
    if strict:
        first = next((str(k) for k in unknown), None) or next(
            (f"turns[{i}].{k}" for i, extra in enumerate(turn_extra) for k in extra), None)
        if first is not None:
            raise RecordError(ErrorCode.E044, field=first)
    if not unknown and not any(turn_extra):
        return record
    metadata = record.get("metadata", {})
    if not isinstance(metadata, dict):
        raise RecordError(ErrorCode.E003, field="metadata", detail=f"expected an object, got {type(metadata).__name__}")
    moved = dict(metadata)
    for key, value in [(k, record[k]) for k in unknown] + ([(TURN_EXTRA, turn_extra)] if any(turn_extra) else []):
        if key in metadata and metadata[key] != value:
            raise RecordError(ErrorCode.E003, field=str(key),
                              detail="given both as a field and under metadata, with different values")
        moved[key] = value
    folded = {k: v for k, v in record.items() if k in Conversation.model_fields}
    folded["metadata"] = moved
    if any(turn_extra):
        folded["turns"] = [{k: v for k, v in t.items() if k in Turn.model_fields} if isinstance(t, dict) else t
                           for t in turns]  # type: ignore[union-attr]
    return folded


def _check_size(record: dict[str, Any], limits: Limits) -> None:
    turns = record.get("turns")
    if not isinstance(turns, (list, tuple)):
        return
    if len(turns) > limits.max_turns:
        raise RecordError(ErrorCode.E043, size=len(turns), what="turns", limit=limits.max_turns, setting="max_turns")
    chars = sum(len(t["text"]) for t in turns if isinstance(t, dict) and isinstance(t.get("text"), str))
    if chars > limits.max_conversation_chars:
        raise RecordError(ErrorCode.E043, size=chars, what="characters of text", limit=limits.max_conversation_chars,
                          setting="max_conversation_chars")


def _record_error(exc: ValidationError) -> RecordError:
    err = exc.errors(include_url=False)[0]
    field = field_path(err["loc"])
    message = str(err.get("msg", ""))
    if err["type"] == "missing":
        return RecordError(ErrorCode.E002, field=field)
    if field.endswith(".role") and err["type"] == "enum":
        return RecordError(ErrorCode.E004, role=err.get("input"), field=field)
    if "E005" in message:
        return RecordError(ErrorCode.E005)
    if "E006" in message:
        size, limit = message.rsplit(" ", 2)[-2:]
        return RecordError(ErrorCode.E006, field=field, size=int(size), limit=int(limit))
    if "E003" in message:
        return RecordError(ErrorCode.E003, field=field or "turns", detail=message.split("E003 ", 1)[1])
    return RecordError(ErrorCode.E003, field=field, detail=message)
