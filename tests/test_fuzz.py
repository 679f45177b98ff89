"""The loaders under arbitrary input: never an exception, every record accounted for.

Records read are counted here on their own terms (non-blank lines, CSV rows, Parquet rows)
and must equal the records in scored conversations plus the records quarantined; every
conversation must score and every quarantined record must be writable.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa_engine.errors import ErrorCode
from qa_engine.io import FileLoad, QuarantineWriter, ResultWriter, load_file
from qa_engine.schema import Limits

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                           HealthCheck.too_slow])
LIMITS = Limits(max_turn_bytes=200, max_turns=6, max_conversation_chars=400, max_record_bytes=2000, max_depth=8)
RECORD_CODES = {code.name for code in ErrorCode if code.name < "E010" or "E040" <= code.name < "E050"}

_texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=20) | st.sampled_from(
    ["亲，这款是全网最好的", "您好", "", "\n", "\"", ",", "全网\"最好", "c1,agent,全网最好", "\ud800", "a\udcff"])
_ids = st.sampled_from(["c1", "c2", "c3", "", "c1 "]) | st.integers(-2, 2) | st.none() | _texts
_timestamps = st.sampled_from(["2026-10-01T10:00:00+08:00", "2026-10-01T09:59:00+08:00", "2026-10-01T10:00:00",
                               "yesterday", "", "2026-13-01T00:00:00Z"]) | st.none() | st.integers(0, 2_000_000_000)
_roles = st.sampled_from(["agent", "customer", "bot", "system", "boss", "", "AGENT"]) | st.none() | st.integers()
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _texts,
                     lambda children: st.lists(children, max_size=3) | st.dictionaries(_texts, children, max_size=3),
                     max_leaves=12)


@st.composite
def _turns(draw):
    turn = {"role": draw(_roles), "text": draw(_texts | st.integers() | st.none())}
    for name, values in (("timestamp", _timestamps), ("msg_id", _texts)):
        if draw(st.booleans()):
            turn[name] = draw(values)
    return turn


@st.composite
def _conversations(draw):
    record = {"conversation_id": draw(_ids), "turns": draw(st.lists(_turns(), max_size=8) | _json)}
    for name, values in (("agent_id", _texts), ("start_time", _timestamps), ("metadata", _json),
                         ("shop_id", _texts), ("customer_id", _ids)):
        if draw(st.booleans()):
            record[name] = draw(values)
    return record


def _accounted(result: FileLoad, records_read: int, pipeline) -> None:
    assert result.records_read == records_read
    assert result.records_read == result.records_scored + result.records_quarantined
    for quarantined in result.quarantined:
        assert quarantined.code in RECORD_CODES, quarantined
        assert quarantined.reason.startswith(quarantined.code)
    out = Path(result.source).with_name("out.jsonl")
    with ResultWriter(out) as writer, QuarantineWriter(out.with_name("q.jsonl")) as bad:
        for conversation in result.conversations:
            writer.write(pipeline.score(conversation), conversation)
        for quarantined in result.quarantined:
            bad.write(quarantined)


def _non_blank_lines(data: bytes) -> int:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return 1  # refused as a whole: the file is one quarantined record
    data = data.removeprefix(b"\xef\xbb\xbf")
    return sum(1 for line in data.split(b"\n") if line.strip())


def _csv_rows(data: bytes) -> int:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return 1
    rows = [r for r in csv.reader(io.StringIO(data.decode("utf-8-sig", "surrogateescape"), newline="")) if r]
    if not rows:
        return 0
    header = rows[0]
    if len(set(header)) < len(header) or any("\udc80" <= c <= "\udcff" for c in "".join(header)):
        return 1  # a header that cannot be trusted: the file is refused as a whole
    return len(rows) - 1


@SETTINGS
@given(data=st.binary(max_size=400))
def test_jsonl_arbitrary_bytes(tmp_path_factory, pipeline, data):
    path = tmp_path_factory.mktemp("fuzz") / "in.jsonl"
    path.write_bytes(data)
    _accounted(load_file(path, LIMITS), _non_blank_lines(data), pipeline)


@SETTINGS
@given(data=st.binary(max_size=400))
def test_csv_arbitrary_bytes(tmp_path_factory, pipeline, data):
    path = tmp_path_factory.mktemp("fuzz") / "in.csv"
    path.write_bytes(b"conversation_id,role,text\n" + data)
    _accounted(load_file(path, LIMITS), _csv_rows(path.read_bytes()), pipeline)


@SETTINGS
@given(data=st.binary(max_size=200))
def test_parquet_arbitrary_bytes(tmp_path_factory, pipeline, data):
    path = tmp_path_factory.mktemp("fuzz") / "in.parquet"
    path.write_bytes(data)
    result = load_file(path, LIMITS)
    _accounted(result, 1, pipeline)
    assert [q.code for q in result.quarantined] == ["E040"]


@SETTINGS
@given(records=st.lists(_conversations() | _json, max_size=6), blank=st.booleans())
def test_jsonl_arbitrary_records(tmp_path_factory, pipeline, records, blank):
    path = tmp_path_factory.mktemp("fuzz") / "in.jsonl"
    lines = [json.dumps(r, ensure_ascii=bool(i % 2)) for i, r in enumerate(records)]
    path.write_text(("\n\n" if blank else "\n").join(lines), encoding="utf-8", errors="surrogatepass")
    _accounted(load_file(path, LIMITS), len(records), pipeline)


_COLUMNS = ["conversation_id", "role", "text", "timestamp", "turn_index", "agent_id", "start_time", "shop_id"]
_cells = _texts | st.sampled_from(["c1", "c2", "agent", "customer", "0", "1", "x", "2026-10-01T10:00:00+08:00"])


@SETTINGS
@given(header=st.lists(st.sampled_from(_COLUMNS), min_size=1, max_size=6, unique=True),
       rows=st.lists(st.lists(_cells, min_size=0, max_size=7), max_size=8), strict=st.booleans())
def test_csv_arbitrary_rows(tmp_path_factory, pipeline, header, rows, strict):
    path = tmp_path_factory.mktemp("fuzz") / "in.csv"
    out = io.StringIO(newline="")
    csv.writer(out).writerows([header, *rows])
    path.write_text(out.getvalue(), encoding="utf-8", errors="surrogatepass")
    result = load_file(path, LIMITS, strict=strict)
    _accounted(result, sum(1 for row in rows if row), pipeline)


def _utf8(value):
    """Parquet string values: text, and UTF-8 (lone surrogates cannot reach a Parquet file)."""
    return None if value is None else str(value).encode("utf-8", "replace").decode("utf-8")


_TURNS = pa.list_(pa.struct([(name, pa.string()) for name in ("role", "text", "timestamp", "msg_id")]))


@SETTINGS
@given(records=st.lists(_conversations(), min_size=1, max_size=5))
def test_parquet_arbitrary_conversation_rows(tmp_path_factory, pipeline, records):
    path = tmp_path_factory.mktemp("fuzz") / "in.parquet"
    for record in records:  # Parquet columns have one type: metadata as JSON text, turns as a list of structs
        if "metadata" in record:
            record["metadata"] = json.dumps(record["metadata"], ensure_ascii=False)
        if not isinstance(record["turns"], list) or not all(isinstance(t, dict) for t in record["turns"]):
            record["turns"] = []
        record["turns"] = [{k: _utf8(v) for k, v in t.items()} for t in record["turns"]]
        for name in ("conversation_id", "customer_id", "start_time", "agent_id", "shop_id", "metadata"):
            if name in record:
                record[name] = _utf8(record[name])
    names = sorted({name for record in records for name in record})
    schema = pa.schema([(name, _TURNS if name == "turns" else pa.string()) for name in names])
    pq.write_table(pa.Table.from_pylist(records, schema=schema), path)
    _accounted(load_file(path, LIMITS), len(records), pipeline)


@SETTINGS
@given(columns=st.lists(st.sampled_from(_COLUMNS), min_size=1, max_size=6, unique=True),
       data=st.data(), strict=st.booleans())
def test_parquet_arbitrary_turn_rows(tmp_path_factory, pipeline, columns, data, strict):
    path = tmp_path_factory.mktemp("fuzz") / "in.parquet"
    size = data.draw(st.integers(0, 8))
    table = {name: data.draw(st.lists(st.none() | (st.integers(-3, 3) if name in ("turn_index", "conversation_id")
                                                    else (st.sampled_from(["c1", "c2", "agent", "customer"]) | _texts)
                                                    .map(_utf8)), min_size=size, max_size=size))
             for name in columns}
    pq.write_table(pa.table({name: pa.array(values, type=pa.int64() if name in ("turn_index", "conversation_id")
                                            else pa.string()) for name, values in table.items()}), path)
    _accounted(load_file(path, LIMITS, strict=strict), size, pipeline)


def test_record_codes_are_the_documented_ones():
    assert RECORD_CODES == {f"E00{i}" for i in range(1, 10)} | {f"E04{i}" for i in range(6)}
