"""The auditor's violation report as rows: one per finding, evidence marked in its turn,
personal data masked, citation and provenance attached; and the summary tables over them.

Every export format (XLSX, CSV, HTML) renders these rows and tables; none computes its own.
"""

from __future__ import annotations

import getpass
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from batch.reports.results import SEVERITY_RANK, Results
from rules.masking import MaskedSpan, PersonalDataMasker

MARK_OPEN, MARK_CLOSE = "【", "】"
REPEAT_OFFENDER_MIN = 3  # the same rule broken in this many conversations by one agent


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    width: int = 12


COLUMNS = (
    Column("finding_id", "发现编号 finding", 22), Column("conversation_id", "会话 conversation", 20),
    Column("time", "时间 time", 20), Column("agent_id", "客服 agent", 12), Column("team", "团队 team", 12),
    Column("channel", "渠道 channel", 9), Column("rule_id", "规则 rule", 28), Column("category", "类别 category", 12),
    Column("severity", "严重度 severity", 10), Column("citation", "法律依据 citation", 40),
    Column("message", "说明 message", 30), Column("evidence", "证据 evidence", 18),
    Column("turn_text", "所在发言（【】标出证据）turn", 60), Column("turn", "轮次 turn #", 8),
    Column("speaker", "发言方 speaker", 9), Column("rewrite", "建议改写 rewrite", 40),
    Column("match", "匹配 match", 10), Column("confidence", "置信度 confidence", 9),
    Column("detector", "检测器 detector", 24), Column("versions", "版本 versions", 40),
    Column("review", "复核 review", 11), Column("reviewer", "复核人 reviewer", 11),
    Column("review_reason", "复核理由 reason", 30),
)


@dataclass(frozen=True)
class Segment:
    """A piece of a turn as exported: masked text replaced; ``mark`` is what it is evidence
    of (a finding row, or ``True``), ``None`` if it is not evidence."""

    text: str
    mark: Any = None


def segments(text: str, masks: tuple[MaskedSpan, ...],
             marks: list[tuple[int, int, Any]] = ()) -> list[Segment]:
    """The turn in pieces, masked spans replaced and each ``(start, end, mark)`` marked.

    A mark that cuts a masked span is widened to it, so a mark never reveals part of a
    masked number; where marks overlap, the earlier one wins.
    """
    widened = []
    for start, end, mark in sorted(marks, key=lambda m: (m[0], m[1])):
        for mask in masks:
            if mask.start < end and start < mask.end:
                start, end = min(start, mask.start), max(end, mask.end)
        widened.append((start, end, mark))
    cuts = sorted({0, len(text), *(p for m in masks for p in (m.start, m.end)),
                   *(p for s, e, _ in widened for p in (s, e) if 0 <= p <= len(text))})
    masks_at = {mask.start: mask for mask in masks}
    pieces: list[Segment] = []
    resume = 0
    for a, b in zip(cuts, cuts[1:]):
        if a < resume:
            continue
        mark = next((m for s, e, m in widened if s <= a and b <= e and s < e), None)
        mask = masks_at.get(a)
        shown = mask.replacement if mask else text[a:b]
        resume = mask.end if mask else b
        if pieces and pieces[-1].mark is mark:
            pieces[-1] = Segment(pieces[-1].text + shown, mark)
        else:
            pieces.append(Segment(shown, mark))
    return pieces


def marked_text(pieces: list[Segment]) -> str:
    return "".join(f"{MARK_OPEN}{p.text}{MARK_CLOSE}" if p.mark is not None else p.text for p in pieces)


class Masking:
    """Masks personal data in exported text, or — on explicit request — does not, and says so."""

    def __init__(self, unmask: bool = False, masker: PersonalDataMasker | None = None) -> None:
        self.unmask = unmask
        self.masker = None if unmask else masker or PersonalDataMasker()
        self.requested_by = getpass.getuser() if unmask else None

    def spans(self, text: str) -> tuple[MaskedSpan, ...]:
        return () if self.masker is None else self.masker.spans(text)

    def text(self, text: str) -> str:
        return text if self.masker is None else self.masker.mask(text)

    def describe(self) -> str:
        if self.masker is None:
            return f"UNMASKED: personal data shown in full, requested with --unmask by {self.requested_by}"
        return f"masked ({', '.join(self.masker.rule_ids)})"


def violation_rows(results: Results, masking: Masking) -> list[dict[str, Any]]:
    """One row per violation finding, in conversation order: the `COLUMNS` exports write, plus the
    evidence span (``start``, ``end``) the dashboard highlights."""
    conversations = results.by_conversation
    rows = []
    for finding in results.violations:
        conversation = conversations[finding["conversation_id"]]
        turns = conversation.get("transcript") or []
        turn = turns[finding["turn"]] if finding.get("turn") is not None and finding["turn"] < len(turns) else None
        if turn is not None:
            marks = [(finding["start"], finding["end"], True)] if finding.get("start") is not None else []
            pieces = segments(turn["text"], masking.spans(turn["text"]), marks)
            turn_text = marked_text(pieces)
            evidence = "".join(p.text for p in pieces if p.mark) or masking.text(finding.get("evidence") or "")
        else:
            turn_text, evidence = "", masking.text(finding.get("evidence") or "")
        verdict = results.verdicts.get(finding["finding_id"], {})
        rows.append({
            "finding_id": finding["finding_id"], "conversation_id": finding["conversation_id"],
            "time": (turn or {}).get("timestamp") or conversation.get("start_time"),
            "agent_id": conversation.get("agent_id"), "team": conversation.get("team"),
            "channel": conversation.get("channel"), "day": conversation.get("day"),
            "rule_id": finding["rule_id"], "category": finding["category"], "severity": finding["severity"],
            "citation": finding.get("citation") or "", "message": finding.get("message") or "",
            "evidence": evidence, "turn_text": turn_text, "turn": finding.get("turn"),
            "start": finding.get("start"), "end": finding.get("end"),  # not exported: the dashboard's highlight
            "speaker": (turn or {}).get("role"), "rewrite": finding.get("rewrite") or "",
            "match": finding.get("match"), "confidence": finding.get("confidence"),
            "detector": f"{finding.get('detector')}@{finding.get('detector_version')}",
            "versions": _versions_text(conversation.get("versions") or ""),
            "review": verdict.get("verdict", "unreviewed"), "reviewer": verdict.get("reviewer", ""),
            "review_reason": verdict.get("reason", ""),
        })
    return rows


@lru_cache(maxsize=64)
def _versions_text(versions_json: str) -> str:
    """``engine 0.1.0; scorecard …; packs ad_law=…`` — compact enough for a cell."""
    if not versions_json:
        return ""
    v = json.loads(versions_json)
    packs = ", ".join(f"{k}={x}" for k, x in sorted(v.get("rule_packs", {}).items()))
    detectors = ", ".join(f"{k}={x}" for k, x in sorted(v.get("detectors", {}).items()))
    models = "".join(f"; model {k}={x}" for k, x in sorted(v.get("models", {}).items()))
    return f"engine {v.get('engine')}; scorecard {v.get('scorecard')}; lexicons {v.get('lexicons')}; " \
           f"detectors {detectors}; packs {packs}{models}"


@dataclass(frozen=True)
class SummaryTable:
    """A titled table of the summary (rendered as a sheet, a CSV section or an HTML table)."""

    name: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


def summary_tables(results: Results, rows: list[dict[str, Any]]) -> list[SummaryTable]:
    """Counts by rule / category / team / agent / day, top offending agents and repeat offenders."""
    conversations_by_team = Counter(c.get("team") for c in results.conversations)
    conversations_by_agent = Counter((c.get("team"), c.get("agent_id")) for c in results.conversations)
    by_rule: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = by_rule.setdefault(row["rule_id"], {"row": row, "n": 0, "conversations": set(), "agents": set()})
        entry["n"] += 1
        entry["conversations"].add(row["conversation_id"])
        entry["agents"].add(row["agent_id"])
    rule_rows = sorted(((rule, e["row"]["category"], e["row"]["severity"], e["n"], len(e["conversations"]),
                         len(e["agents"]), e["row"]["citation"]) for rule, e in by_rule.items()),
                       key=lambda r: (-r[3], r[0]))
    categories = Counter(row["category"] for row in rows)
    team_counts = Counter(row["team"] for row in rows)
    agent_counts = Counter((row["team"], row["agent_id"]) for row in rows)
    agent_critical = Counter((row["team"], row["agent_id"]) for row in rows if row["severity"] == "critical")
    team_rows = sorted(((team, n, team_counts[team], _per_100(team_counts[team], n))
                        for team, n in conversations_by_team.items()), key=lambda r: (-r[2], str(r[0])))
    agent_rows = sorted(((team, agent, n, agent_counts[(team, agent)], agent_critical[(team, agent)],
                          _per_100(agent_counts[(team, agent)], n))
                         for (team, agent), n in conversations_by_agent.items()),
                        key=lambda r: (-r[3], -r[4], str(r[1])))
    ordered_categories = sorted(categories)
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        per_day[row["day"] or "unknown"][row["category"]] += 1
    day_rows = [(day, sum(c.values()), *(c[cat] for cat in ordered_categories)) for day, c in sorted(per_day.items())]
    repeat: dict[tuple[Any, Any, str], set[str]] = defaultdict(set)
    for row in rows:
        repeat[(row["team"], row["agent_id"], row["rule_id"])].add(row["conversation_id"])
    repeat_rows = sorted(((team, agent, rule, len(ids)) for (team, agent, rule), ids in repeat.items()
                          if len(ids) >= REPEAT_OFFENDER_MIN), key=lambda r: (-r[3], str(r[1]), r[2]))
    return [
        SummaryTable("by_category", "Violations by category 按类别", ("category", "violations"),
                     sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))),
        SummaryTable("by_day", "Violations per day 按日", ("day", "violations", *ordered_categories), day_rows),
        SummaryTable("by_rule", "Violations by rule 按规则",
                     ("rule_id", "category", "severity", "violations", "conversations", "agents", "citation"),
                     rule_rows),
        SummaryTable("by_team", "Violations by team 按团队",
                     ("team", "conversations", "violations", "per_100_conversations"), team_rows),
        SummaryTable("by_agent", "Violations by agent (top offenders first) 按客服",
                     ("team", "agent_id", "conversations", "violations", "critical", "per_100_conversations"),
                     agent_rows),
        SummaryTable("repeat_offenders",
                     f"Repeat offenders: one rule broken in ≥ {REPEAT_OFFENDER_MIN} conversations 屡犯",
                     ("team", "agent_id", "rule_id", "conversations"), repeat_rows),
    ]


def _per_100(violations: int, conversations: int) -> float:
    return round(100 * violations / conversations, 1) if conversations else 0.0


def header(results: Results, rows: list[dict[str, Any]], masking: Masking, title: str) -> list[tuple[str, str]]:
    """What the report is: source, scope, totals, masking status and provenance."""
    reviewed = sum(1 for row in rows if row["review"] != "unreviewed")
    severities = Counter(row["severity"] for row in rows)
    return [
        ("report", title),
        ("generated_at", datetime.now(timezone.utc).isoformat(timespec="seconds")),
        ("source", str(results.source)),
        ("filters", results.filters.describe()),
        ("conversations", f"{len(results.conversations)} in scope of {results.conversations_total}"),
        ("violations", f"{len(rows)} (" + ", ".join(f"{s} {severities[s]}" for s in
                                                  sorted(severities, key=SEVERITY_RANK.get)) + ")"),
        ("reviewed", f"{reviewed} of {len(rows)}"),
        ("personal_data", masking.describe()),
        ("versions", json.dumps(results.versions(), ensure_ascii=False, sort_keys=True)),
    ]
