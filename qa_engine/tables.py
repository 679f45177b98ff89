"""Flat rows of a `ScoreReport` for columnar outputs (pure; no pyarrow here).

One row per conversation and one per finding — the shapes of the batch job's
``conversations/`` and ``findings/`` tables and of the auditor reports built on them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
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
        "channel": report.channel, "customer_id": report.customer_id, "start_time": report.start_time.isoformat() if report.start_time else None,
        "day": day, "score": report.score, "passed": report.passed,
        "auto_fail_reasons": list(report.auto_fail_reasons),
        **{f"section_{name}": value for name, value in sorted(report.sections.items())},
        "resolution": report.resolution, "empathy": report.empathy,
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


def customer_id_of(conversation: Conversation) -> str | None:
    """Who the customer is: the conversation's ``customer_id``, else ``metadata.customer_id`` (exports that
    carry it among their own fields); ``None`` when neither says."""
    value = getattr(conversation, "customer_id", None) or conversation.metadata.get("customer_id")
    return None if value in (None, "") else str(value)


FCR_WINDOW_DAYS = 7  # a customer back within this many days was not helped for good on first contact


def first_contact_resolution(contacts: Sequence[tuple[str | None, str | None, str | None]],
                             window_days: int = FCR_WINDOW_DAYS) -> list[bool | None]:
    """First-contact resolution of each ``(customer_id, start_time ISO, resolution)``, judged across all of them.

    ``True``: resolved, and the same customer did not contact again within ``window_days`` of its start.
    ``False``: not resolved, or the customer came back within the window. ``None`` (not measured): no
    customer id, start time or resolution label, or a resolved contact whose window reaches past the
    last contact in the data (a return could not have been seen yet). Times without a zone count as UTC.
    """
    starts = [_instant(start) for _, start, _ in contacts]
    flags: list[bool | None] = [None] * len(contacts)
    end = max((s for s in starts if s is not None), default=None)
    window = timedelta(days=window_days)
    by_customer: dict[str, list[int]] = defaultdict(list)
    for index, (customer, _, _) in enumerate(contacts):
        if customer is not None and starts[index] is not None:
            by_customer[customer].append(index)
    for indices in by_customer.values():
        indices.sort(key=lambda i: starts[i])
        for here, later in zip(indices, [*indices[1:], None]):
            resolution = contacts[here][2]
            came_back = later is not None and starts[later] - starts[here] <= window
            if resolution is not None and (resolution != "resolved" or came_back):
                flags[here] = False
            elif resolution is not None and starts[here] + window <= end:
                flags[here] = True
    return flags


def fcr_note(conversations: int, with_customer: int, measured: int, window_days: int = FCR_WINDOW_DAYS) -> str:
    """Why a first-contact-resolution rate is missing or partial ("" when every conversation was judged)."""
    if with_customer == 0:
        return "not measured: no customer_id (needed to see whether the customer contacted again)"
    if measured == 0:
        return (f"not measured: no conversation with a customer_id has a resolution label, a start time and "
                f"{window_days} days of later contacts in the data")
    return "" if measured == conversations else f"measured on {measured} of {conversations} conversations"


def _instant(start: str | None) -> datetime | None:
    if start is None:
        return None
    moment = datetime.fromisoformat(start)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
