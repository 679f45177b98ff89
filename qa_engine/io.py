"""Loading transcripts and writing results (the file-system edge of qa_engine).

Nothing in the scoring path imports this module. Loaders yield, per input record, either a
valid `Conversation` or a `Quarantined` record naming file, row, field and reason — a bad
record never stops a run and is never dropped: records in = scored + quarantined.

Formats:
- JSONL: one conversation object a line.
- Parquet: one conversation a row (with a ``turns`` list column), or one turn a row.
- CSV: one turn a row (``conversation_id, role, text, timestamp`` plus optional
  ``channel, agent_id, team, start_time, turn_index``), grouped by conversation id.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from qa_engine.errors import ErrorCode, RecordError
from qa_engine.findings import ScoreReport
from qa_engine.schema import Conversation, parse_conversation
from qa_engine.tables import transcript, transcript_json

FORMATS = ("jsonl", "parquet", "csv")
_TURN_FIELDS = ("role", "text", "timestamp")
_CONVERSATION_FIELDS = ("channel", "agent_id", "team", "start_time")


@dataclass(frozen=True)
class Quarantined:
    """A record that could not be scored, with the reason."""

    source: str
    row: int | None
    code: str
    reason: str
    conversation_id: str | None = None
    raw: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "row": self.row, "conversation_id": self.conversation_id,
                "code": self.code, "reason": self.reason, "raw": self.raw}


Loaded = Conversation | Quarantined


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    fmt = {"jsonl": "jsonl", "ndjson": "jsonl", "json": "jsonl", "parquet": "parquet", "pq": "parquet",
           "csv": "csv"}.get(suffix)
    if fmt is None:
        raise RecordError(ErrorCode.E040, source=str(path), detail=f"unknown format '.{suffix}' (use {', '.join(FORMATS)})")
    return fmt


def load(path: Path) -> Iterator[Loaded]:
    """Every record of one file, valid or quarantined, in file order.

    An unknown suffix is a usage error and raises at once; a file that cannot be read
    (missing, corrupt Parquet) becomes one quarantined record with no row.
    """
    path = Path(path)
    loader = {"jsonl": load_jsonl, "parquet": load_parquet, "csv": load_csv}[detect_format(path)]
    return _guarded(loader, path)


def _guarded(loader: Callable[[Path], Iterator[Loaded]], path: Path) -> Iterator[Loaded]:
    try:
        yield from loader(path)
    except (OSError, pa.ArrowException) as exc:
        detail = getattr(exc, "strerror", None) or str(exc)
        yield _quarantine(str(path), None, RecordError(ErrorCode.E040, source=path, detail=detail))


def _quarantine(source: str, row: int | None, error: RecordError, conversation_id: Any = None,
                raw: str | None = None) -> Quarantined:
    return Quarantined(source, row, error.code.name, str(error),
                       conversation_id if isinstance(conversation_id, str) else None, raw)


def _parse(source: str, row: int, record: Any, raw: str) -> Loaded:
    try:
        return parse_conversation(record)
    except RecordError as exc:
        cid = record.get("conversation_id") if isinstance(record, dict) else None
        return _quarantine(source, row, exc, cid, raw)


def load_jsonl(path: Path, adapt: Callable[[Any], Any] | None = None) -> Iterator[Loaded]:
    """One conversation a line; ``adapt`` maps another layout's record (a corpus row) to ours first,
    so converted corpora pass the same validation and quarantine as any input."""
    source = str(path)
    with open(path, "rb") as handle:
        for row, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                error = RecordError(ErrorCode.E007, offset=exc.start, detail=exc.reason)
                yield _quarantine(source, row, error, raw=base64.b64encode(line).decode("ascii"))
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                yield _quarantine(source, row, RecordError(ErrorCode.E001, detail=str(exc)), raw=text.rstrip("\n"))
                continue
            if adapt is not None:
                try:
                    record = adapt(record)
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    error = RecordError(ErrorCode.E003, field="<record>", detail=f"not a corpus row: {exc!r}")
                    yield _quarantine(source, row, error, raw=text.rstrip("\n"))
                    continue
            yield _parse(source, row, record, text.rstrip("\n"))


def load_parquet(path: Path) -> Iterator[Loaded]:
    source = str(path)
    parquet = pq.ParquetFile(path)
    if "turns" in parquet.schema_arrow.names:
        row = 0
        for batch in parquet.iter_batches():
            for record in batch.to_pylist():
                row += 1
                yield _parse(source, row, _drop_nulls(record), json.dumps(record, ensure_ascii=False, default=str))
    else:
        rows = (r for batch in parquet.iter_batches() for r in batch.to_pylist())
        yield from _group_turn_rows(source, enumerate(rows, start=1))


def _drop_nulls(record: dict[str, Any]) -> dict[str, Any]:
    """Parquet gives absent optional fields as nulls; the schema treats them as absent."""
    cleaned = {k: v for k, v in record.items() if v is not None}
    if isinstance(cleaned.get("turns"), list):
        cleaned["turns"] = [{k: v for k, v in t.items() if v is not None} if isinstance(t, dict) else t
                            for t in cleaned["turns"]]
    if isinstance(cleaned.get("metadata"), str):
        cleaned["metadata"] = json.loads(cleaned["metadata"])
    return cleaned


def load_csv(path: Path) -> Iterator[Loaded]:
    source = str(path)
    data = path.read_bytes()
    text = data.decode("utf-8-sig", errors="surrogateescape")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    yield from _group_turn_rows(source, ((reader.line_num, r) for r in reader))


@dataclass
class _Group:
    first_row: int
    header: dict[str, Any]
    turns: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    error: Quarantined | None = None


def _group_turn_rows(source: str, rows: Iterator[tuple[int, dict[str, Any]]]) -> Iterator[Loaded]:
    """Group one-turn-a-row records by conversation id, keeping first-seen order."""
    groups: dict[str, _Group] = {}
    for row, record in rows:
        bad = next((k for k, v in record.items() if isinstance(v, str) and _has_surrogates(v)), None)
        cid = record.get("conversation_id")
        if bad is not None:
            error = RecordError(ErrorCode.E007, offset=0, detail=f"in field '{bad}'")
            raw = base64.b64encode(str(record).encode("utf-8", "surrogateescape")).decode("ascii")
            if isinstance(cid, str) and cid and not _has_surrogates(cid):
                group = groups.setdefault(cid, _Group(row, {}))
                group.error = group.error or _quarantine(source, row, error, cid, raw)
            else:
                yield _quarantine(source, row, error, raw=raw)
            continue
        if not cid:
            yield _quarantine(source, row, RecordError(ErrorCode.E002, field="conversation_id"),
                              raw=json.dumps(record, ensure_ascii=False, default=str))
            continue
        cid = str(cid)
        header = {k: record.get(k) for k in _CONVERSATION_FIELDS if record.get(k) not in (None, "")}
        group = groups.setdefault(cid, _Group(row, header))
        if header != group.header and group.error is None:
            differing = next(k for k in _CONVERSATION_FIELDS if header.get(k) != group.header.get(k))
            group.error = _quarantine(source, row, RecordError(ErrorCode.E008, field=differing), cid)
        order = record.get("turn_index")
        try:
            position = float(order) if order not in (None, "") else float(len(group.turns))
        except (TypeError, ValueError):
            group.error = group.error or _quarantine(
                source, row, RecordError(ErrorCode.E003, field="turn_index", detail=f"not a number: {order!r}"), cid)
            continue
        group.turns.append((position, {k: record.get(k) for k in _TURN_FIELDS
                                       if record.get(k) not in (None, "") or k == "text"}))
    for cid, group in groups.items():
        if group.error is not None:
            yield group.error
            continue
        turns = [turn for _, turn in sorted(group.turns, key=lambda item: item[0])]
        record = {"conversation_id": cid, **group.header, "turns": turns}
        loaded = _parse(source, group.first_row, record, json.dumps(record, ensure_ascii=False, default=str))
        yield loaded


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


class ResultWriter:
    """Writes score reports as JSONL or Parquet (chosen by the output suffix), each with the
    transcript it scored under ``transcript`` when given, for reports to show evidence in context."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.format = detect_format(self.path)
        if self.format == "csv":
            raise RecordError(ErrorCode.E040, source=str(path), detail="results are written as .jsonl or .parquet")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rows: list[dict[str, Any]] = []
        self._handle = open(self.path, "w", encoding="utf-8") if self.format == "jsonl" else None

    def write(self, report: ScoreReport, conversation: Conversation | None = None) -> None:
        if self._handle is not None:
            line = report.model_dump_json()
            if conversation is not None:  # the report is a JSON object: add one member before its closing brace
                line = f'{line[:-1]},"transcript":{transcript_json(conversation)}}}'
            self._handle.write(line + "\n")
        else:
            row = report.model_dump(mode="json")
            if conversation is not None:
                row["transcript"] = transcript(conversation)
            self._rows.append(row)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        else:
            pq.write_table(pa.Table.from_pylist(self._rows), self.path)

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_quarantine(path: Path, records: list[Quarantined]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")


def read_results(path: Path) -> list[dict[str, Any]]:
    """Results written by `ResultWriter`, as plain dicts."""
    path = Path(path)
    if detect_format(path) == "parquet":
        return pq.read_table(path).to_pylist()
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
