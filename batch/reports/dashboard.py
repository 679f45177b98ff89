"""The QA dashboard: one self-contained HTML file (inline CSS and SVG, no script, no CDN).

Score distribution, team and agent rankings, empathy and resolution rates, first-response
percentiles, violations over the month, reviewer calibration, the conversations to review
first and a readable transcript for each linked conversation with its findings highlighted.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from batch.reports import charts
from batch.reports.results import SEVERITY_RANK, Results
from batch.reports.reviews import precision_by_rule
from batch.reports.violations import Masking, SummaryTable, segments
from qa_engine.tables import FCR_WINDOW_DAYS, fcr_note

REVIEW_FIRST = 50       # conversations in the review queue
VIOLATION_ROWS = 300    # most severe violations listed (the XLSX / CSV hold them all)
#: service quality, not law: the scorecard's service-standard breaches and the empathy judgement, charted
#: apart so that many minor ones (a missing closing invite) do not bury the compliance violations
SERVICE_CATEGORIES = frozenset({"service", "empathy"})

_environment = Environment(loader=PackageLoader("batch.reports", "templates"), autoescape=select_autoescape(["html"]),
                           trim_blocks=True, lstrip_blocks=True)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0–100); ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)) - 1, 0)]


def _rate(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def _stats(conversations: list[dict[str, Any]], violations_by_conversation: Counter[str],
           fcr_window_days: int = FCR_WINDOW_DAYS) -> dict[str, Any]:
    empathy = [c["empathy"] == "present" for c in conversations if c.get("empathy") in ("present", "late", "missing")]
    resolution = Counter(c.get("resolution") for c in conversations if c.get("resolution"))
    fcr = [bool(c["first_contact_resolution"]) for c in conversations if c.get("first_contact_resolution") is not None]
    frt = [c["metric_first_response_s"] for c in conversations if c.get("metric_first_response_s") is not None]
    scores = [c["score"] for c in conversations]
    return {
        "conversations": len(conversations),
        "mean_score": sum(scores) / len(scores) if scores else None,
        "pass_rate": _rate([bool(c["passed"]) for c in conversations]),
        "auto_fails": sum(1 for c in conversations if c.get("auto_fail_reasons")),
        "empathy_rate": _rate(empathy),
        "resolved_rate": resolution["resolved"] / sum(resolution.values()) if resolution else None,
        "escalated_rate": resolution["escalated"] / sum(resolution.values()) if resolution else None,
        "fcr_rate": _rate(fcr),
        "fcr_note": fcr_note(len(conversations), sum(1 for c in conversations if c.get("customer_id") is not None),
                             len(fcr), fcr_window_days),
        "frt_p50": percentile(frt, 50), "frt_p90": percentile(frt, 90), "frt_p99": percentile(frt, 99),
        "violations_per_100": 100 * sum(violations_by_conversation[c["conversation_id"]] for c in conversations)
        / len(conversations) if conversations else None,
    }


def render_dashboard(results: Results, rows: list[dict[str, Any]], tables: list[SummaryTable], masking: Masking,
                     header: list[tuple[str, str]]) -> str:
    """The dashboard HTML for the results in scope and their auditor rows."""
    conversations = results.conversations
    violations_by_conversation = Counter(row["conversation_id"] for row in rows)
    window = results.fcr_window_days
    overall = _stats(conversations, violations_by_conversation, window)
    by_team: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_agent: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for c in conversations:
        by_team[c.get("team") or "—"].append(c)
        by_agent[(c.get("team") or "—", c.get("agent_id") or "—")].append(c)
    teams = sorted(((team, _stats(cs, violations_by_conversation, window)) for team, cs in by_team.items()),
                   key=lambda t: -(t[1]["mean_score"] or 0))
    agents = sorted(((team, agent, _stats(cs, violations_by_conversation, window))
                     for (team, agent), cs in by_agent.items()),
                    key=lambda a: (-(a[2]["mean_score"] or 0), a[1]))
    named = {t.name: t for t in tables}
    by_day = named["by_day"]
    compliance_columns = [k for k, cat in enumerate(by_day.columns[2:], start=2) if cat not in SERVICE_CATEGORIES]
    service = [r for r in rows if r["category"] in SERVICE_CATEGORIES]
    service_by_day = Counter((r["day"] or "unknown", r["rule_id"]) for r in service)
    service_days = sorted({day for day, _ in service_by_day})
    service_rules = Counter(r["rule_id"] for r in service)
    review_first = sorted(conversations, key=lambda c: (not c.get("auto_fail_reasons"), c["score"],
                                                        c["conversation_id"]))[:REVIEW_FIRST]
    listed = sorted(rows, key=lambda r: (SEVERITY_RANK[r["severity"]], r["time"] or "", r["finding_id"]))[:VIOLATION_ROWS]
    precision = precision_by_rule(results)
    reviewed = sum(p.reviewed for p in precision)
    linked = {c["conversation_id"] for c in review_first} | {r["conversation_id"] for r in listed}
    figures = {
        "score": charts.histogram([c["score"] for c in conversations], [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100],
                                  "Score distribution 评分分布"),
        "per_day": charts.columns([r[0] for r in by_day.rows],
                                  {by_day.columns[k]: [r[k] for r in by_day.rows] for k in compliance_columns},
                                  "Compliance violations per day by category 每日合规违规", "violations"),
        "by_category": charts.hbar([r for r in named["by_category"].rows if r[0] not in SERVICE_CATEGORIES],
                                   "Compliance violations by category 合规违规类别"),
        "service_per_day": charts.columns(service_days, {rule: [service_by_day[(day, rule)] for day in service_days]
                                                         for rule in sorted(service_rules)},
                                          "Service standards and empathy per day 每日服务规范", "breaches"),
        "service_by_standard": charts.hbar(service_rules.most_common(), "Service standards and empathy, by standard "
                                           "服务规范", color=charts.PALETTE[6]),
        "team_score": charts.hbar([(t, s["mean_score"] or 0) for t, s in teams], "Mean score by team 团队均分",
                                  "{:.1f}", charts.PALETTE[2], maximum=100),
        "team_empathy": charts.hbar([(t, 100 * (s["empathy_rate"] or 0)) for t, s in teams],
                                    "Empathy before solving, % of complaints 共情率", "{:.0f}%", charts.PALETTE[4], 100),
        "team_resolved": charts.hbar([(t, 100 * (s["resolved_rate"] or 0)) for t, s in teams],
                                     "Resolved, % of conversations 解决率", "{:.0f}%", charts.PALETTE[1], 100),
        "team_frt": charts.hbar([(t, s["frt_p90"] or 0) for t, s in teams],
                                "First response p90 by team, seconds 首次响应 p90", "{:.0f} s", charts.PALETTE[5]),
        "agent_bottom": charts.hbar([(f"{a} ({t})", s["mean_score"] or 0) for t, a, s in agents[::-1][:10]],
                                    "Lowest mean score, agents 待辅导客服", "{:.1f}", charts.PALETTE[3], 100),
    }
    figures = {name: Markup(svg) for name, svg in figures.items()}
    rows_by_conversation: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["conversation_id"] in linked:
            rows_by_conversation[row["conversation_id"]].append(row)
    transcripts = [_transcript(c, rows_by_conversation[c["conversation_id"]], masking)
                   for c in conversations if c["conversation_id"] in linked]
    return _environment.get_template("dashboard.html").render(
        header=header, masking=masking, overall=overall, teams=teams, agents=agents, figures=figures,
        review_first=review_first, listed=listed, precision=precision, reviewed=reviewed,
        agreement=(sum(p.confirmed for p in precision) / reviewed) if reviewed else None,
        transcripts=transcripts, violation_count=len(rows), service_count=len(service), fcr_window_days=window,
        review_first_limit=REVIEW_FIRST,
        violation_rows_limit=VIOLATION_ROWS, pct=_pct, num=_num, fcr=_fcr)


def _transcript(conversation: dict[str, Any], rows: list[dict[str, Any]], masking: Masking) -> dict[str, Any]:
    """The conversation's turns, each violation's span highlighted, personal data masked."""
    turns = []
    for index, turn in enumerate(conversation.get("transcript") or []):
        marks = [(r["start"], r["end"], r) for r in rows if r["turn"] == index and r["start"] is not None]
        turns.append({"role": turn["role"], "timestamp": turn.get("timestamp"),
                      "pieces": segments(turn["text"], masking.spans(turn["text"]), marks)})
    return {"conversation": conversation, "turns": turns, "findings": rows}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _fcr(stats: dict[str, Any]) -> str:
    return "not measured" if stats["fcr_rate"] is None else _pct(stats["fcr_rate"])


def _num(value: float | None, fmt: str = "{:.1f}") -> str:
    return "–" if value is None else fmt.format(value)
