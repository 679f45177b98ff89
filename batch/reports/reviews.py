"""Reviewers' verdicts on findings: import, storage beside the results, precision per rule.

The calibration loop: QA reviewers confirm or overturn a sample of findings; reports then
show each finding's reviewed status and the dashboard the precision of every rule. A verdict
file's bad rows (unknown finding, unknown verdict, no reviewer) are quarantined with their
row number and reason, never dropped: rows in = imported + quarantined.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from batch.reports.results import Results, load_results, verdicts_path
from qa_engine.errors import ErrorCode, ResultsError

VERDICTS = {"confirm": "confirmed", "confirmed": "confirmed", "correct": "confirmed", "确认": "confirmed",
            "overturn": "overturned", "overturned": "overturned", "false_positive": "overturned",
            "推翻": "overturned"}
REQUIRED = ("finding_id", "verdict", "reviewer")
#: the auditor CSV export's own column names: reviewers may fill in the export and import it back
EXPORT_ALIASES = {"review": "verdict", "review_reason": "reason"}
NOT_REVIEWED = ("", "unreviewed")


@dataclass(frozen=True)
class ImportSummary:
    """rows_in = imported + unchanged + unreviewed + quarantined."""

    rows_in: int
    imported: int
    unchanged: int      # the verdict already in force, e.g. a re-imported export
    unreviewed: int     # no verdict given (an export row nobody reviewed)
    quarantined: int
    verdicts_file: Path
    quarantine_file: Path | None


def import_verdicts(verdicts_csv: Path, results_source: Path, now: datetime | None = None) -> ImportSummary:
    """Validate a reviewers' CSV against the results and append its good rows to the verdict store.

    The CSV is either a verdict file (``finding_id, verdict, reviewer, reason``) or the auditor
    CSV export with its ``review`` / ``reviewer`` / ``review_reason`` columns filled in.

    Raises:
        ResultsError: the CSV is unreadable or lacks a required column (nothing is imported).
    """
    results = load_results(results_source)
    known = {row["finding_id"] for row in results.violations}
    rows = _read_csv(verdicts_csv)
    now = now or datetime.now(timezone.utc)
    good: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    unchanged = unreviewed = 0
    for line, raw in rows:
        row = _cleaned(raw)
        if row["verdict"] in NOT_REVIEWED:
            unreviewed += 1
            continue
        in_force = results.verdicts.get(row["finding_id"])
        if in_force and (in_force["verdict"], in_force["reviewer"], in_force["reason"]) == (
                VERDICTS.get(row["verdict"]), row["reviewer"], row["reason"]):
            unchanged += 1
            continue
        problem = _problem(row, raw, known)
        if problem:
            bad.append({"source": str(verdicts_csv), "row": line, "reason": problem, "raw": raw})
            continue
        good.append({"finding_id": row["finding_id"], "verdict": VERDICTS[row["verdict"]],
                     "reviewer": row["reviewer"], "reason": row["reason"], "reviewed_at": row["reviewed_at"] or None,
                     "imported_at": now.isoformat(), "imported_from": str(verdicts_csv)})
    store = verdicts_path(Path(results_source))
    if good:
        _append(store, good)
    quarantine = None
    if bad:
        quarantine = store.with_name(f"{store.stem}.quarantine-{now.strftime('%Y%m%dT%H%M%S')}.jsonl")
        quarantine.parent.mkdir(parents=True, exist_ok=True)
        quarantine.write_text("".join(json.dumps(b, ensure_ascii=False) + "\n" for b in bad), encoding="utf-8")
    return ImportSummary(len(rows), len(good), unchanged, unreviewed, len(bad), store, quarantine)


def _read_csv(path: Path) -> list[tuple[int, dict[str, str]]]:
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(ErrorCode.E051, source=path, row=0, detail=f"unreadable ({exc})") from None
    lines = text.splitlines(keepends=True)
    preamble = next((i for i, line in enumerate(lines) if not line.startswith(("#", '"#'))), len(lines))
    reader = csv.DictReader(io.StringIO("".join(lines[preamble:]), newline=""))
    columns = [EXPORT_ALIASES.get(c, c) if EXPORT_ALIASES.get(c) not in (reader.fieldnames or []) else c
               for c in reader.fieldnames or []]
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ResultsError(ErrorCode.E051, source=path, row=preamble + 1,
                           detail=f"missing column(s) {', '.join(missing)} (need {', '.join(REQUIRED)}, reason)")
    reader.fieldnames = columns
    return [(preamble + reader.line_num, row) for row in reader]


def _cleaned(raw: dict[str, str | None]) -> dict[str, str]:
    """The fields a verdict uses, stripped; the verdict lower-cased."""
    row = {key: (raw.get(key) or "").strip() for key in (*REQUIRED, "reason", "reviewed_at")}
    row["verdict"] = row["verdict"].lower()
    return row


def _problem(row: dict[str, str], raw: dict[str, str | None], known: set[str]) -> str | None:
    if not row["finding_id"]:
        return "field 'finding_id' is empty"
    if row["finding_id"] not in known:
        return f"field 'finding_id': {row['finding_id']!r} is not a violation finding of these results"
    if row["verdict"] not in VERDICTS:
        return f"field 'verdict': {raw.get('verdict')!r} is not one of confirm, overturn"
    if not row["reviewer"]:
        return "field 'reviewer' is empty"
    return None


def _append(store: Path, rows: list[dict[str, Any]]) -> None:
    """Add verdicts to the store atomically (the last verdict on a finding is the one in force)."""
    store.parent.mkdir(parents=True, exist_ok=True)
    previous = pq.read_table(store).to_pylist() if store.exists() else []
    temporary = store.with_name(f".{store.name}.tmp-{os.getpid()}")
    pq.write_table(pa.Table.from_pylist(previous + rows), temporary)
    os.replace(temporary, store)


@dataclass(frozen=True)
class RulePrecision:
    rule_id: str
    reviewed: int
    confirmed: int
    overturned: int

    @property
    def precision(self) -> float:
        return self.confirmed / self.reviewed if self.reviewed else float("nan")


def precision_by_rule(results: Results) -> list[RulePrecision]:
    """Of each rule's reviewed findings in scope, the share reviewers confirmed."""
    counts: dict[str, Counter[str]] = {}
    for row in results.violations:
        verdict = results.verdicts.get(row["finding_id"])
        if verdict is not None:
            counts.setdefault(row["rule_id"], Counter())[verdict["verdict"]] += 1
    return [RulePrecision(rule, c["confirmed"] + c["overturned"], c["confirmed"], c["overturned"])
            for rule, c in sorted(counts.items())]

