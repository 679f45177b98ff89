"""Flat rows of a `ScoreReport` for columnar outputs (pure; no pyarrow here).

One row per conversation and one per finding — the shapes of the batch job's
``conversations/`` and ``findings/`` tables and of the auditor reports built on them.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from qa_engine.findings import ScoreReport, Versions
from qa_engine.schema import Conversation, Turn


def versions_json(versions: Versions) -> str:
    return json.dumps(versions.model_dump(), ensure_ascii=False, sort_keys=True)


def finding_id(conversation_id: str, index: int) -> str:
    """The stable id reviewers' verdicts refer to: the conversation and the finding's position."""
    return f"{conversation_id}#{index}"


_TURNS = TypeAdapter(tuple[Turn, ...])


def transcript(conversation: Conversation) -> list[dict[str, Any]]:
    """The turns as plain rows (role, text, timestamp), so reports can show evidence in context."""
    return _TURNS.dump_python(conversation.turns, mode="json")


def transcript_json(conversation: Conversation) -> str:
    """`transcript` as JSON text, serialised without building the rows first (the CLI's hot path)."""
    return _TURNS.dump_json(conversation.turns).decode("utf-8")


def conversation_row(report: ScoreReport, source: str = "", versions: str | None = None,
                     conversation: Conversation | None = None) -> dict[str, Any]:
    """The conversation-level result, sections and metrics as columns, versions as JSON
    (``versions``: that JSON precomputed, when many rows share it) and the transcript."""
    day = report.start_time.date().isoformat() if report.start_time else None
    return {
        "conversation_id": report.conversation_id, "agent_id": report.agent_id, "team": report.team,
        "channel": report.channel, "start_time": report.start_time.isoformat() if report.start_time else None,
        "day": day, "score": report.score, "passed": report.passed,
        "auto_fail_reasons": list(report.auto_fail_reasons),
        **{f"section_{name}": value for name, value in sorted(report.sections.items())},
        "resolution": report.resolution, "first_contact_resolution": report.first_contact_resolution,
        "empathy": report.empathy,
        **{f"metric_{name}": value for name, value in report.metrics.model_dump().items()},
        "violations": len(report.violations),
        "versions": versions if versions is not None else versions_json(report.versions),
        "source": source,
        "transcript": transcript(conversation) if conversation is not None else None,
    }


def finding_rows(report: ScoreReport) -> list[dict[str, Any]]:
    """Every finding with the conversation columns an auditor filters on."""
    day = report.start_time.date().isoformat() if report.start_time else None
    return [
        {"conversation_id": report.conversation_id, "agent_id": report.agent_id, "team": report.team,
         "channel": report.channel, "day": day, "finding_index": index,
         "finding_id": finding_id(report.conversation_id, index),
         **finding.model_dump(mode="json")}
        for index, finding in enumerate(report.findings)
    ]
