"""Loading transcripts and writing results (the file-system edge of qa_engine).

Nothing in the scoring path imports this module. A `FileReader` yields, per input record,
either a valid `Conversation` or a `Quarantined` record naming file, row, field, code and
reason — a bad record never stops a run and is never dropped. Each reader counts the records
it reads as it reads them (JSONL: non-blank lines; CSV: rows; Parquet: the rows the file's
footer declares), independently of what it yields, so a run can check
records read = records in scored conversations + records quarantined.

Formats:
- JSONL: one conversation object a line (UTF-8, a leading byte-order mark is accepted).
- Parquet: one conversation a row (with a ``turns`` list column), or one turn a row.
- CSV: one turn a row (``conversation_id, role, text, timestamp`` plus optional
  ``channel, agent_id, team, customer_id, start_time, turn_index``), grouped by conversation id.

Fields outside the schema are kept under ``metadata`` (refused with E044 when strict). In the
turn-a-row formats an unknown column with one value on every row of a conversation is a
conversation field; otherwise it is a field of each turn (``metadata["turn_extra"]``).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from qa_engine.errors import ErrorCode, RecordError
from qa_engine.findings import ScoreReport
from qa_engine.schema import Conversation, Limits, Role, field_path, parse_conversation
from qa_engine.tables import transcript, transcript_json

FORMATS = ("jsonl", "parquet", "csv")
RAW_KEPT = 4096  # characters of a quarantined record's raw text kept in the quarantine file
_TURN_FIELDS = ("role", "text", "timestamp")
_CONVERSATION_FIELDS = ("channel", "agent_id", "team", "customer_id", "start_time")
_ROW_FIELDS = frozenset({"conversation_id", "turn_index", *_TURN_FIELDS, *_CONVERSATION_FIELDS})
_ROLES = frozenset(role.value for role in Role)
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# csv refuses fields over its limit and cannot go on reliably after one: well over any record cap,
# so a field hits the record cap (E042) first; past this a quote is surely unterminated (E040)
_CSV_FIELD_CEILING = 256 * 1024 * 1024


@dataclass(frozen=True)
class Quarantined:
    """A record that could not be scored, with the reason.

    ``raw`` is the record as read (base64 when it is not UTF-8 text), cut to its first
    `RAW_KEPT` characters; ``raw_bytes`` and ``raw_sha256`` describe the whole record.
    ``records`` is how many input records (lines, rows) it stands for.
    """

    source: str
    row: int | None
    code: str
    reason: str
    conversation_id: str | None = None
    raw: str | None = None
    raw_encoding: str | None = None
    raw_bytes: int | None = None
    raw_sha256: str | None = None
    records: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "row": self.row, "conversation_id": self.conversation_id,
                "code": self.code, "reason": self.reason, "records": self.records, "raw": self.raw,
                "raw_encoding": self.raw_encoding, "raw_bytes": self.raw_bytes, "raw_sha256": self.raw_sha256}


Loaded = Conversation | Quarantined


class Entry(NamedTuple):
    """One output of a reader: the item and the number of input records it came from."""

    item: Loaded
    records: int


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    fmt = {"jsonl": "jsonl", "ndjson": "jsonl", "json": "jsonl", "parquet": "parquet", "pq": "parquet",
           "csv": "csv"}.get(suffix)
    if fmt is None:
        raise RecordError(ErrorCode.E040, source=str(path), detail=f"unknown format '.{suffix}' (use {', '.join(FORMATS)})")
    return fmt


@dataclass
class _Candidate:
    """A record read, before validation: a decoded record or the error that stopped it."""

    row: int | None
    records: int
    raw: Callable[[], bytes]
    record: Any = None
    error: RecordError | None = None
    conversation_id: str | None = None
    oversize: _Oversize | None = None


@dataclass
class _Row:
    """One row of a turn-a-row file (CSV, Parquet without ``turns``)."""

    row: int
    record: dict[str, Any] | None
    error: RecordError | None
    raw: Callable[[], bytes]
    swallowed: tuple[str, ...] = ()  # conversation ids of rows an unterminated quote in this row ran over


@dataclass(frozen=True)
class _Oversize:
    """Length and hash of a record too big to keep (only its head is)."""

    size: int
    sha256: str


class FileReader:
    """Reads one file. Iterate it for `Entry`s in file order; ``records_read`` then holds the
    number of records read, counted as they were read.

    Args:
        path: a ``.jsonl``/``.parquet``/``.csv`` file (an unknown suffix raises E040 at once).
        limits: caps on records and conversations.
        strict: refuse fields outside the schema (E044) instead of keeping them in metadata.
        seen: conversation ids already scored in this run (id → ``file:row``), shared by the
            readers of one run; a later record with one of them is quarantined (E041).
    """

    def __init__(self, path: Path, limits: Limits = Limits(), strict: bool = False,
                 seen: dict[str, str] | None = None, adapt: Callable[[Any], Any] | None = None) -> None:
        self.path = Path(path)
        self.source = str(self.path)
        self.format = detect_format(self.path)
        self.limits = limits
        self.strict = strict
        self.seen = {} if seen is None else seen
        self.adapt = adapt  # JSONL only: maps another layout's record (a corpus row) to ours first
        self.records_read = 0
        self._declared: int | None = None  # Parquet: the rows its footer declares

    def __iter__(self) -> Iterator[Entry]:
        reader = {"jsonl": self._jsonl, "parquet": self._parquet, "csv": self._csv}[self.format]
        counted = 0
        try:
            for candidate in reader():
                counted += candidate.records
                yield self._resolve(candidate)
        except (OSError, pa.ArrowException, csv.Error, RecordError) as exc:
            if isinstance(exc, RecordError) and exc.code is not ErrorCode.E040:
                raise
            detail = exc.details.get("detail") if isinstance(exc, RecordError) else (
                getattr(exc, "strerror", None) or str(exc))
            # what the file holds (Parquet) or what was read (rows of conversations left incomplete),
            # but not yielded, stands as one quarantined record — or the file itself when nothing was read
            pending = (self._declared if self._declared is not None else self.records_read) - counted
            records = max(1, pending)
            self.records_read = counted + records
            error = RecordError(ErrorCode.E040, source=self.source, detail=detail)
            yield Entry(_quarantine(self.source, None, error, records=records), records)

    # -- formats -------------------------------------------------------------------------

    def _jsonl(self) -> Iterator[_Candidate]:
        limit = self.limits.max_record_bytes
        with open(self.path, "rb") as handle:
            _refuse_utf16(self.source, handle.read(4))
            handle.seek(0)
            row = 0
            while True:
                line = handle.readline(limit + 1)
                if not line:
                    return
                row += 1
                if row == 1 and line.startswith(_UTF8_BOM):
                    line = line[len(_UTF8_BOM):]
                if len(line.rstrip(b"\r\n")) > limit:
                    yield self._oversize_line(handle, row, line)
                    continue
                if not line.strip():
                    continue
                self.records_read += 1
                yield self._json_candidate(row, line.rstrip(b"\r\n"))

    def _oversize_line(self, handle: Any, row: int, head: bytes) -> _Candidate:
        """A line over the record limit, read on in chunks: only its head, length and hash are kept."""
        digest, size, chunk = hashlib.sha256(head.rstrip(b"\r\n")), len(head.rstrip(b"\r\n")), head
        while chunk and not chunk.endswith(b"\n"):
            chunk = handle.readline(1 << 20)
            body = chunk.rstrip(b"\r\n")
            digest.update(body)
            size += len(body)
        self.records_read += 1
        prefix = head[:RAW_KEPT]
        error = RecordError(ErrorCode.E042, size=size, limit=self.limits.max_record_bytes)
        return _Candidate(row, 1, lambda: prefix, error=error, oversize=_Oversize(size, digest.hexdigest()))

    def _json_candidate(self, row: int, line: bytes) -> _Candidate:
        candidate = _Candidate(row, 1, lambda: line)
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            candidate.error = RecordError(ErrorCode.E007, where=f"at byte {exc.start}", detail=exc.reason)
            return candidate
        try:
            candidate.record = json.loads(text)
        except RecursionError:
            candidate.error = RecordError(ErrorCode.E045, limit=self.limits.max_depth)
        except ValueError as exc:  # JSONDecodeError, and integers too long to convert
            candidate.error = RecordError(ErrorCode.E001, detail=str(exc))
        else:
            candidate.error = _inspect(candidate.record, self.limits, None)
        if candidate.error is None and self.adapt is not None:
            try:
                candidate.record = self.adapt(candidate.record)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                candidate.error = RecordError(ErrorCode.E003, field="<record>", detail=f"not a corpus row: {exc!r}")
        candidate.conversation_id = _cid(candidate.record)
        return candidate

    def _parquet(self) -> Iterator[_Candidate]:
        parquet = pq.ParquetFile(self.path)
        self._declared = parquet.metadata.num_rows
        self.records_read = self._declared  # counted from the footer, not from what is read
        limit = self.limits.max_record_bytes
        rows = self._parquet_rows(parquet)
        if "turns" not in parquet.schema_arrow.names:
            yield from self._grouped(_Row(r.row, r.record, r.error or _inspect(r.record, self.limits, limit), r.raw)
                                     for r in rows)
            return
        for row in rows:
            record = row.record
            error = row.error or _decode_metadata(record, self.limits) or _inspect(record, self.limits, limit)
            yield _Candidate(row.row, 1, row.raw, record, error, _cid(record))

    def _parquet_rows(self, parquet: pq.ParquetFile) -> Iterator[_Row]:
        """Every row; a row whose values cannot be converted carries an E007."""
        row = 0
        for batch in parquet.iter_batches():
            try:
                records: list[Any] = batch.to_pylist()
            except (UnicodeDecodeError, pa.ArrowException):
                records = [_row_or_error(batch.slice(i, 1)) for i in range(batch.num_rows)]
            for record in records:
                row += 1
                if isinstance(record, RecordError):
                    yield _Row(row, None, record, lambda: b"")
                    continue
                record = _drop_nulls(record)
                yield _Row(row, record, None, _json_raw(record))

    def _csv(self) -> Iterator[_Candidate]:
        with open(self.path, "rb") as probe:
            _refuse_utf16(self.source, probe.read(4))
        with open(self.path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
            reader = csv.reader(handle)
            header = next((fields for fields in reader if fields), None)  # blank lines before it are no rows
            if header is None:
                return
            if not _is_text(",".join(header)):
                raise RecordError(ErrorCode.E040, source=self.source, detail="the header row is not UTF-8")
            duplicate = next((name for name in header if header.count(name) > 1), None)
            if duplicate is not None:
                raise RecordError(ErrorCode.E040, source=self.source, detail=f"column '{duplicate}' appears twice")
            yield from self._grouped(self._csv_rows(reader, header))

    def _csv_rows(self, reader: Any, header: list[str]) -> Iterator[_Row]:
        """Every row, numbered by its first line, with the error of a malformed one."""
        csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_CEILING))
        line = reader.line_num
        for fields in reader:
            start, line = line + 1, reader.line_num
            if not fields:
                continue  # a blank line is not a record
            self.records_read += 1
            raw = _csv_raw(fields)
            swallowed, error = _swallowed_rows(header, fields, start)
            error = error or _field_count(header, fields)
            if error is None:
                bad = next((name for name, value in zip(header, fields) if not _is_text(value)), None)
                if bad is not None:
                    error = RecordError(ErrorCode.E007, where=f"in column '{bad}'", detail="invalid UTF-8 bytes")
            size = sum(len(value.encode("utf-8", "surrogateescape")) for value in fields)
            if error is None and size > self.limits.max_record_bytes:
                error = RecordError(ErrorCode.E042, size=size, limit=self.limits.max_record_bytes)
            yield _Row(start, dict(zip(header, fields)), error, raw, swallowed)

    # -- turn-a-row formats ----------------------------------------------------------------

    def _grouped(self, rows: Iterable[_Row]) -> Iterator[_Candidate]:
        """Group one-turn-a-row records by conversation id, keeping first-seen order. A bad row
        quarantines its whole conversation (a conversation missing a turn is not scored)."""
        groups: dict[str, _Group] = {}
        swallowed: dict[str, int] = {}  # conversation id → line of the quote that swallowed some of its rows
        for row in rows:
            record, error = row.record, row.error
            for other in row.swallowed:
                swallowed.setdefault(other, row.row)
            cid = _cid(record)
            if cid is None:
                if error is None:
                    present = isinstance(record, dict) and record.get("conversation_id") not in (None, "")
                    error = RecordError(ErrorCode.E003, field="conversation_id", detail="not a text or an integer") \
                        if present else RecordError(ErrorCode.E002, field="conversation_id")
                yield _Candidate(row.row, 1, row.raw, error=error)
                continue
            assert record is not None  # a row with a conversation id has a record
            header = {k: record[k] for k in _CONVERSATION_FIELDS if record.get(k) not in (None, "")}
            group = groups.setdefault(cid, _Group(row.row, header))
            group.rows += 1
            group.raw.append(row.raw)
            if group.error is not None:
                continue
            if error is not None:
                group.error = error
                continue
            if header != group.header:
                differing = next(k for k in _CONVERSATION_FIELDS if header.get(k) != group.header.get(k))
                group.error = RecordError(ErrorCode.E008, field=differing)
                continue
            order = record.get("turn_index")
            try:
                position = float(order) if order not in (None, "") else float(len(group.turns))
            except (TypeError, ValueError):
                group.error = RecordError(ErrorCode.E003, field="turn_index", detail=f"not a number: {order!r}")
                continue
            group.turns.append((position, {k: v for k, v in record.items() if k not in _ROW_FIELDS or k in _TURN_FIELDS
                                           if v not in (None, "") or k == "text"}))
        for cid, group in groups.items():
            error = group.error
            if error is None and cid in swallowed:
                error = RecordError(ErrorCode.E009, detail=f"rows of this conversation were swallowed by the "
                                                           f"unterminated quote in the row at line {swallowed[cid]}")
            candidate = _Candidate(group.first_row, group.rows, _joined(group.raw), error=error, conversation_id=cid)
            if error is None:
                candidate.record = _assemble(cid, group)
            yield candidate

    # -- validation, duplicates --------------------------------------------------------------

    def _resolve(self, candidate: _Candidate) -> Entry:
        cid = candidate.conversation_id
        error = candidate.error
        if error is None:
            try:
                conversation = parse_conversation(candidate.record, self.limits, self.strict)
            except RecordError as exc:
                error = exc
            else:
                first = self.seen.get(conversation.conversation_id)
                if first is None:
                    self.seen[conversation.conversation_id] = f"{self.source}:{candidate.row}"
                    return Entry(conversation, candidate.records)
                error = RecordError(ErrorCode.E041, conversation_id=conversation.conversation_id, first=first)
        quarantined = _quarantine(self.source, candidate.row, error, cid, candidate.raw(), candidate.records,
                                  candidate.oversize)
        return Entry(quarantined, candidate.records)


@dataclass
class _Group:
    first_row: int
    header: dict[str, Any]
    turns: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    error: RecordError | None = None
    rows: int = 0
    raw: list[Callable[[], bytes]] = field(default_factory=list)


def _assemble(cid: str, group: _Group) -> dict[str, Any]:
    """The conversation record of a group's rows; unknown columns with one value on every row
    are conversation fields, the others stay fields of their turns."""
    turns = [turn for _, turn in sorted(group.turns, key=lambda item: item[0])]
    extra = {k for turn in turns for k in turn if k not in _TURN_FIELDS}
    shared = {k: turns[0][k] for k in extra
              if all(k in turn for turn in turns) and all(turn[k] == turns[0][k] for turn in turns)}
    if shared:
        turns = [{k: v for k, v in turn.items() if k not in shared} for turn in turns]
    return {"conversation_id": cid, **group.header, **shared, "turns": turns}


def _cid(record: Any) -> str | None:
    """A record's conversation id when it is usable as one (text, or an integer from Parquet)."""
    cid = record.get("conversation_id") if isinstance(record, dict) else None
    if isinstance(cid, int) and not isinstance(cid, bool):
        return str(cid)
    return cid if isinstance(cid, str) and cid and _is_text(cid) else None


def _is_text(value: str) -> bool:
    """False when a string holds lone surrogates (undecodable bytes, or a JSON ``\\ud800`` escape)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _inspect(record: Any, limits: Limits, max_bytes: int | None) -> RecordError | None:
    """Nesting depth (E045), strings that are not text (E007) and, given ``max_bytes``, the
    total size of the strings (E042) of a decoded record — without recursion."""
    total = 0
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(record, 1, ())]
    while stack:
        node, depth, path = stack.pop()
        if depth > limits.max_depth:
            return RecordError(ErrorCode.E045, limit=limits.max_depth)
        if isinstance(node, dict):
            children: Iterable[tuple[Any, Any]] = node.items()
        elif isinstance(node, (list, tuple)):
            children = enumerate(node)
        else:
            if isinstance(node, str):
                try:
                    total += len(node.encode("utf-8"))
                except UnicodeEncodeError as exc:
                    return RecordError(ErrorCode.E007, where=f"in field '{field_path(path) or '<record>'}'",
                                       detail=f"lone surrogate {node[exc.start]!r} (an escape that is no character)")
            continue
        for key, child in children:
            if isinstance(key, str) and not _is_text(key):
                return RecordError(ErrorCode.E007, where=f"in a field name under '{field_path(path) or '<record>'}'",
                                   detail="lone surrogate")
            stack.append((child, depth + 1, (*path, key)))
    if max_bytes is not None and total > max_bytes:
        return RecordError(ErrorCode.E042, size=total, limit=max_bytes)
    return None


def _refuse_utf16(source: str, head: bytes) -> None:
    if head.startswith(_UTF16_BOMS):
        raise RecordError(ErrorCode.E040, source=source,
                          detail="the file is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8")


def _swallowed_rows(header: list[str], fields: list[str], start: int) -> tuple[tuple[str, ...], RecordError | None]:
    """E009 when a quoted field runs over lines that are complete rows of their own — a quote
    left open swallowed them — with those rows' conversation ids."""
    roles = header.index("role") if "role" in header else None
    cids = header.index("conversation_id") if "conversation_id" in header else None
    for name, value in zip(header, fields):
        if "\n" not in value:
            continue
        lines = value.splitlines()[1:]
        rows = [parts for parts in csv.reader(lines) if len(parts) == len(header)
                and (roles is None or parts[roles].strip() in _ROLES) and (cids is None or parts[cids].strip())]
        if rows:
            ids = tuple(sorted({parts[cids].strip() for parts in rows} if cids is not None else set()))
            return ids, RecordError(ErrorCode.E009, detail=(
                f"column '{name}' opens a quote at line {start} that is never closed where it should be: it runs over "
                f"{len(lines)} more line(s), {len(rows)} of them rows of their own"
                + (f" (conversation {', '.join(ids)})" if ids else "") + "; close the quote"))
    return (), None


def _field_count(header: list[str], fields: list[str]) -> RecordError | None:
    if len(fields) == len(header):
        return None
    return RecordError(ErrorCode.E009, detail=f"{len(fields)} fields, the header has {len(header)} "
                                              "(an unquoted comma in a text, or a missing field)")


def _decode_metadata(record: dict[str, Any] | None, limits: Limits) -> RecordError | None:
    """Parquet writers often store ``metadata`` as JSON text: decode it in place."""
    if record is None or not isinstance(record.get("metadata"), str):
        return None
    try:
        record["metadata"] = json.loads(record["metadata"])
    except RecursionError:
        return RecordError(ErrorCode.E045, limit=limits.max_depth)
    except ValueError as exc:
        return RecordError(ErrorCode.E001, detail=f"field 'metadata' is text but not JSON: {exc}")
    return None


def _drop_nulls(record: dict[str, Any]) -> dict[str, Any]:
    """Parquet gives absent optional fields as nulls; the schema treats them as absent."""
    cleaned = {k: v for k, v in record.items() if v is not None}
    if isinstance(cleaned.get("turns"), list):
        cleaned["turns"] = [{k: v for k, v in t.items() if v is not None} if isinstance(t, dict) else t
                            for t in cleaned["turns"]]
    return cleaned


def _row_or_error(row: pa.RecordBatch) -> Any:
    try:
        return row.to_pylist()[0]
    except (UnicodeDecodeError, pa.ArrowException) as exc:
        return RecordError(ErrorCode.E007, where="in a Parquet value", detail=str(exc))


def _json_raw(record: Any) -> Callable[[], bytes]:
    return lambda: json.dumps(record, ensure_ascii=False, default=str).encode("utf-8", "surrogateescape")


def _csv_raw(fields: list[str]) -> Callable[[], bytes]:
    def raw() -> bytes:
        out = io.StringIO(newline="")
        csv.writer(out).writerow(fields)
        return out.getvalue().encode("utf-8", "surrogateescape")
    return raw


def _joined(raws: list[Callable[[], bytes]]) -> Callable[[], bytes]:
    return lambda: b"".join(raw() for raw in raws)


def _quarantine(source: str, row: int | None, error: RecordError, conversation_id: str | None = None,
                raw: bytes | None = None, records: int = 1, oversize: _Oversize | None = None) -> Quarantined:
    if raw is None:
        return Quarantined(source, row, error.code.name, str(error), conversation_id, records=records)
    size, sha = (oversize.size, oversize.sha256) if oversize else (len(raw), hashlib.sha256(raw).hexdigest())
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        if oversize is not None and exc.start >= len(raw) - 3:  # a head cut inside a character
            text, encoding = raw[:exc.start].decode("utf-8"), "utf-8"
        else:
            text, encoding = base64.b64encode(raw[:RAW_KEPT]).decode("ascii"), "base64"
    return Quarantined(source, row, error.code.name, str(error), conversation_id, text[:RAW_KEPT], encoding, size, sha,
                       records)


def load(path: Path, limits: Limits = Limits(), strict: bool = False,
         seen: dict[str, str] | None = None) -> Iterator[Loaded]:
    """Every record of one file, valid or quarantined, in file order (see `FileReader`).

    An unknown suffix is a usage error and raises at once; a file that cannot be read
    (missing, corrupt Parquet, UTF-16) becomes one quarantined record with no row.
    """
    reader = FileReader(path, limits, strict, seen)
    return (entry.item for entry in reader)


def load_jsonl(path: Path, adapt: Callable[[Any], Any] | None = None) -> Iterator[Loaded]:
    """One conversation a line; ``adapt`` maps another layout's record (a corpus row) to ours first,
    so converted corpora pass the same validation and quarantine as any input."""
    return (entry.item for entry in FileReader(path, adapt=adapt))


@dataclass
class FileLoad:
    """One file read whole: what the batch job and the CLI quarantine alike.

    ``records_read`` is counted as the file is read; ``records_scored`` and the quarantined
    records' ``records`` are what became of them, so ``balanced`` is a real check.
    """

    source: str
    conversations: list[Conversation]
    quarantined: list[Quarantined]
    records_read: int
    records_scored: int

    @property
    def records_quarantined(self) -> int:
        return sum(q.records for q in self.quarantined)

    @property
    def balanced(self) -> bool:
        return self.records_read == self.records_scored + self.records_quarantined


def load_file(path: Path, limits: Limits = Limits(), strict: bool = False,
              seen: dict[str, str] | None = None) -> FileLoad:
    """Every conversation and quarantined record of one file, with the records read."""
    reader = FileReader(path, limits, strict, seen)
    result = FileLoad(reader.source, [], [], 0, 0)
    for entry in reader:
        if isinstance(entry.item, Quarantined):
            result.quarantined.append(entry.item)
        else:
            result.conversations.append(entry.item)
            result.records_scored += entry.records
    result.records_read = reader.records_read
    return result


class ResultWriter:
    """Writes score reports as JSONL or Parquet (chosen by the output suffix), each with the
    transcript it scored under ``transcript`` when given, for reports to show evidence in context.

    Results go to ``<output>.partial`` and replace the output only when the writer closes
    without an error, so a failed run never leaves a partial file under the output's name."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.format = detect_format(self.path)
        if self.format == "csv":
            raise RecordError(ErrorCode.E040, source=str(path), detail="results are written as .jsonl or .parquet")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self._rows: list[dict[str, Any]] = []
        self._handle = open(self.partial, "w", encoding="utf-8") if self.format == "jsonl" else None

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
            pq.write_table(pa.Table.from_pylist(self._rows), self.partial)
        os.replace(self.partial, self.path)

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            if self._handle is not None:
                self._handle.close()
            self.partial.unlink(missing_ok=True)


class QuarantineWriter:
    """Appends quarantined records to a JSONL file as they come (a crash keeps those before it)."""

    def __init__(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "w", encoding="utf-8", errors="backslashreplace")

    def write(self, record: Quarantined) -> None:
        self._handle.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> QuarantineWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_results(path: Path) -> list[dict[str, Any]]:
    """Results written by `ResultWriter`, as plain dicts."""
    path = Path(path)
    if detect_format(path) == "parquet":
        return pq.read_table(path).to_pylist()
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
