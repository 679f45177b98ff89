"""Scored results as reports read them: a batch output folder or a ``qa-engine score`` file.

Both become the same rows — conversations (with their transcripts) and violation findings —
so every report is built one way. A results set a report cannot trust (missing folder,
unreadable shard, malformed line) is refused with an error naming the file and row, never
reported partially.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from pydantic import ValidationError

from batch.shards import MANIFEST, read_table
from qa_engine.errors import ErrorCode, ResultsError
from qa_engine.findings import ScoreReport, Severity
from qa_engine.tables import FCR_WINDOW_DAYS, conversation_row, finding_id, finding_rows, first_contact_resolution

SEVERITY_RANK = {Severity.CRITICAL.value: 0, Severity.MAJOR.value: 1, Severity.MINOR.value: 2,
                 Severity.INFO.value: 3}
CONVERSATION_COLUMNS = ["conversation_id", "agent_id", "team", "day", "score", "passed", "versions"]
FINDING_COLUMNS = ["conversation_id", "finding_index", "rule_id", "category", "kind", "severity", "turn",
                   "start", "end", "evidence"]


@dataclass(frozen=True)
class Filters:
    """What a report covers. Dates are inclusive and apply to the conversation's day;
    ``severity`` is a minimum (``major`` keeps critical and major); ``rules`` are globs."""

    date_from: date | None = None
    date_to: date | None = None
    teams: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    severity: Severity | None = None

    def keeps_conversation(self, row: dict[str, Any]) -> bool:
        day = row.get("day")
        if (self.date_from or self.date_to) and day is None:
            return False
        if self.date_from and date.fromisoformat(day) < self.date_from:
            return False
        if self.date_to and date.fromisoformat(day) > self.date_to:
            return False
        return (not self.teams or row.get("team") in self.teams) and \
            (not self.agents or row.get("agent_id") in self.agents)

    def keeps_finding(self, row: dict[str, Any]) -> bool:
        if self.rules and not any(fnmatch.fnmatchcase(row["rule_id"], glob) for glob in self.rules):
            return False
        return self.severity is None or SEVERITY_RANK[row["severity"]] <= SEVERITY_RANK[self.severity.value]

    def describe(self) -> str:
        parts = [f"{name} {value}" for name, value in (
            ("from", self.date_from), ("to", self.date_to), ("team", ", ".join(self.teams)),
            ("agent", ", ".join(self.agents)), ("rule", ", ".join(self.rules)),
            ("severity ≥", self.severity.value if self.severity else None)) if value]
        return "; ".join(parts) or "none"


@dataclass
class Results:
    """The conversations and violation findings a report covers, with reviewers' verdicts."""

    source: Path
    conversations: list[dict[str, Any]]
    violations: list[dict[str, Any]]
    filters: Filters = field(default_factory=Filters)
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    conversations_total: int = 0
    fcr_window_days: int = FCR_WINDOW_DAYS

    @property
    def by_conversation(self) -> dict[str, dict[str, Any]]:
        return {row["conversation_id"]: row for row in self.conversations}

    def versions(self) -> dict[str, Any]:
        """The provenance the covered conversations were scored with (one set, or each distinct one)."""
        distinct = sorted({row["versions"] for row in self.conversations if row.get("versions")})
        parsed = [json.loads(v) for v in distinct]
        return parsed[0] if len(parsed) == 1 else {"mixed": parsed}


def verdicts_path(source: Path) -> Path:
    """Where reviewers' verdicts live: beside the results they judge."""
    return source / "reviews" / "verdicts.parquet" if source.is_dir() else \
        source.with_name(source.name.split(".")[0] + ".reviews.parquet")


def load_verdicts(path: Path) -> dict[str, dict[str, Any]]:
    """The verdict in force for each reviewed finding: the last one imported."""
    if not path.exists():
        return {}
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise ResultsError(ErrorCode.E050, source=path, detail=f"unreadable verdicts ({exc})") from None
    return {row["finding_id"]: row for row in rows}


def load_results(source: Path, filters: Filters | None = None, fcr_window_days: int = FCR_WINDOW_DAYS) -> Results:
    """Read results and keep what ``filters`` cover. Each conversation gets its ``first_contact_resolution``,
    judged against every conversation read (a customer's return after ``--to`` still counts).

    Raises:
        ResultsError: the path is missing, is not a results folder or file, or is malformed.
    """
    source = Path(source)
    filters = filters or Filters()
    if not source.exists():
        raise ResultsError(ErrorCode.E050, source=source, detail="does not exist")
    conversations, findings = _read_folder(source) if source.is_dir() else _read_file(source)
    contacts = [(row.get("customer_id"), row.get("start_time"), row.get("resolution")) for row in conversations]
    for row, flag in zip(conversations, first_contact_resolution(contacts, fcr_window_days)):
        row["first_contact_resolution"] = flag
    kept = [row for row in conversations if filters.keeps_conversation(row)]
    in_scope = {row["conversation_id"] for row in kept}
    violations = [row for row in findings if row["kind"] == "violation"
                  and row["conversation_id"] in in_scope and filters.keeps_finding(row)]
    for row in violations:
        row["finding_id"] = row.get("finding_id") or finding_id(row["conversation_id"], row["finding_index"])
    return Results(source, kept, violations, filters, load_verdicts(verdicts_path(source)), len(conversations),
                   fcr_window_days)


def _read_folder(folder: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if not (folder / MANIFEST).exists() and not (folder / "conversations").is_dir():
        raise ResultsError(ErrorCode.E050, source=folder,
                           detail=f"not a batch output folder (no {MANIFEST}, no conversations/); "
                                  "run `qa-engine batch` or pass a `qa-engine score` results file")
    if not any((folder / "conversations").glob("*.parquet")):
        raise ResultsError(ErrorCode.E050, source=folder, detail="conversations/ holds no committed shard")
    conversations = read_table(folder, "conversations", CONVERSATION_COLUMNS).to_pylist()
    findings = read_table(folder, "findings", FINDING_COLUMNS).to_pylist()
    return conversations, findings


def _read_file(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    suffix = path.name.rsplit(".", 1)[-1].lower()
    if suffix == "parquet":
        try:
            records = enumerate(pq.read_table(path).to_pylist(), start=1)
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            raise ResultsError(ErrorCode.E050, source=path, detail=f"unreadable Parquet ({exc})") from None
    elif suffix in ("jsonl", "json", "ndjson"):
        records = _jsonl_records(path)
    else:
        raise ResultsError(ErrorCode.E050, source=path,
                           detail="expected a batch output folder or a .jsonl / .parquet file from `qa-engine score`")
    conversations: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    for row, record in records:
        try:
            report = ScoreReport.model_validate(record)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ResultsError(ErrorCode.E050, source=f"{path}:{row}",
                               detail=f"not a score result: {where}: {err['msg']}") from None
        converted = conversation_row(report, source=str(path),  # versions as stored: same JSON, less work
                                     versions=json.dumps(record["versions"], ensure_ascii=False, sort_keys=True))
        converted["transcript"] = record.get("transcript")
        conversations.append(converted)
        findings.extend(finding_rows(report))
    if not conversations:
        raise ResultsError(ErrorCode.E050, source=path, detail="holds no results")
    return conversations, findings


def _jsonl_records(path: Path):
    with open(path, encoding="utf-8") as handle:
        for row, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield row, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ResultsError(ErrorCode.E050, source=f"{path}:{row}", detail=f"invalid JSON ({exc})") from None
