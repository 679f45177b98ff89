"""Coded error table (floor: qa_engine; imports nothing of the project).

Every message names what is wrong and where, so a quarantined record or a refused rule
pack tells its reader which row / field / rule to fix. Codes are stable: quarantine files
and logs carry them.
"""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    """Stable codes; the value is the message template."""

    E001 = "invalid JSON: {detail}"
    E002 = "missing field '{field}'"
    E003 = "field '{field}' has the wrong type or value: {detail}"
    E004 = "unknown role {role!r} in {field} (expected one of agent, customer, bot, system)"
    E005 = "conversation has no turns"
    E006 = "turn text in {field} is {size} bytes, over the {limit}-byte limit"
    E007 = "undecodable text (not UTF-8) {where}: {detail}"
    E008 = "inconsistent conversation-level field '{field}' across rows of one conversation"
    E009 = "malformed CSV row: {detail}"
    E010 = "rule pack {source}: rule {rule_id}: {detail}"
    E011 = "rule pack {source}: {detail}"
    E012 = "duplicate rule id {rule_id} in {source} (first defined in {first})"
    E020 = "scorecard {source}: {detail}"
    E021 = ("scorecard {scorecard} does not score category {category!r}, which {detector} emits "
            "(add it to a section's categories, e.g. compliance)")
    E022 = "run config {source}: {detail}"
    E030 = "unknown detector {name!r}; registered: {known}"
    E040 = "cannot read {source}: {detail}"
    E041 = ("duplicate conversation id {conversation_id!r} (first seen at {first}): this later record is not scored")
    E042 = "record is {size} bytes, over the {limit}-byte limit (max_record_bytes)"
    E043 = "conversation has {size} {what}, over the limit of {limit} ({setting})"
    E044 = "unknown field '{field}' (strict mode refuses fields outside the schema; without it they go to metadata)"
    E045 = "record nested deeper than {limit} levels (max_depth)"
    E050 = "results {source}: {detail}"
    E051 = "verdicts {source}: row {row}: {detail}"

    def format(self, **kwargs: object) -> str:
        return f"{self.name}: {self.value.format(**kwargs)}"


class QAEngineError(Exception):
    """Base error carrying a stable code."""

    def __init__(self, code: ErrorCode, **kwargs: object) -> None:
        self.code = code
        self.details = kwargs
        super().__init__(code.format(**kwargs))


class RecordError(QAEngineError):
    """One input record is bad; the record is quarantined and the run goes on."""


class RulePackError(QAEngineError):
    """A rule pack is malformed; it is refused as a whole."""


class ScorecardError(QAEngineError):
    """A scorecard is malformed."""


class RegistryError(QAEngineError):
    """A detector name does not resolve."""


class ResultsError(QAEngineError):
    """Scored results cannot be read for a report, or a reviewer's verdict file is unusable."""
