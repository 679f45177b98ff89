"""Loaders: every bad-input kind is quarantined with file, row, field and reason."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qa_engine.errors import RecordError
from qa_engine.io import Quarantined, ResultWriter, load, read_results
from qa_engine.schema import Conversation

GOOD = {"conversation_id": "c1", "channel": "app", "agent_id": "a1", "team": "售后一组",
        "start_time": "2026-10-01T10:00:00+08:00",
        "turns": [{"role": "customer", "text": "我的快递还没到", "timestamp": "2026-10-01T10:00:00+08:00"},
                  {"role": "agent", "text": "亲，您好，这边帮您查询", "timestamp": "2026-10-01T10:00:05+08:00"}]}


def _with(**changes):
    record = json.loads(json.dumps(GOOD))
    record.update(changes)
    return record


def _turn(**changes):
    turn = dict(GOOD["turns"][1])
    turn.update(changes)
    return turn


# fmt: off
BAD_LINES = [
    # (raw line bytes, code, text the reason must contain)
    (b'{"conversation_id": "x1", "turns": [', "E001", "invalid JSON"),
    (json.dumps({"turns": GOOD["turns"]}).encode(), "E002", "conversation_id"),
    (json.dumps(_with(turns=[{"role": "agent"}])).encode(), "E002", "turns[0].text"),
    (json.dumps(_with(turns=[_turn(text=42)])).encode(), "E003", "turns[0].text"),
    (json.dumps(_with(turns="hello")).encode(), "E003", "turns"),
    (json.dumps(_with(turns=[_turn(timestamp="yesterday")])).encode(), "E003", "turns[0].timestamp"),
    (json.dumps(_with(turns=[_turn(role="manager")])).encode(), "E004", "turns[0].role"),
    (json.dumps(_with(turns=[])).encode(), "E005", "no turns"),
    (json.dumps(_with(turns=[_turn(text="好" * 30000)])).encode(), "E006", "turns[0].text"),
    ('{"conversation_id": "x9", "turns": [{"role": "agent", "text": "'.encode() + "全网最好".encode("gbk") + b'"}]}',
     "E007", "UTF-8"),
    (b'["not", "an", "object"]', "E003", "<record>"),
]
# fmt: on


def test_jsonl_quarantines_each_bad_kind_and_keeps_going(tmp_path):
    path = tmp_path / "month.jsonl"
    lines = [json.dumps(GOOD, ensure_ascii=False).encode()] + [line for line, _, _ in BAD_LINES] + \
            [json.dumps(_with(conversation_id="c2"), ensure_ascii=False).encode()]
    path.write_bytes(b"\n".join(lines) + b"\n")
    records = list(load(path))
    assert len(records) == len(lines)  # records in = scored + quarantined
    good = [r for r in records if isinstance(r, Conversation)]
    bad = [r for r in records if isinstance(r, Quarantined)]
    assert [c.conversation_id for c in good] == ["c1", "c2"]
    for record, (_, code, needle) in zip(bad, BAD_LINES):
        assert record.code == code, record.reason
        assert needle in record.reason
        assert record.source == str(path) and record.row is not None and record.raw
    assert [r.row for r in bad] == list(range(2, 2 + len(BAD_LINES)))


def test_csv_groups_turn_rows_and_quarantines_bad_conversations(tmp_path):
    path = tmp_path / "month.csv"
    path.write_text(
        "conversation_id,turn_index,role,text,timestamp,agent_id\n"
        "c1,1,agent,\"亲，您好，\n这边帮您查询\",2026-10-01T10:00:05+08:00,a1\n"
        "c2,0,customer,你好,2026-10-01T11:00:00+08:00,a2\n"
        "c1,0,customer,我的快递还没到,2026-10-01T10:00:00+08:00,a1\n"
        "c2,1,boss,你好,2026-10-01T11:00:03+08:00,a2\n"
        ",0,customer,没有会话号,,\n"
        "c3,0,customer,你好,,a3\n"
        "c3,1,agent,您好,,a4\n",
        encoding="utf-8-sig",
    )
    records = list(load(path))
    assert len(records) == 4
    by_id = {r.conversation_id: r for r in records}
    c1 = by_id["c1"]
    assert isinstance(c1, Conversation) and [t.role.value for t in c1.turns] == ["customer", "agent"]
    assert c1.turns[1].text == "亲，您好，\n这边帮您查询" and c1.agent_id == "a1"
    assert by_id["c2"].code == "E004" and "turns[1].role" in by_id["c2"].reason
    assert by_id["c3"].code == "E008" and "agent_id" in by_id["c3"].reason
    missing = by_id[None]
    assert missing.code == "E002" and missing.row == 7


def test_csv_with_undecodable_bytes(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes("conversation_id,role,text\nc1,agent,".encode() + "全网最好".encode("gbk") +
                     "\nc2,agent,您好\n".encode())
    records = list(load(path))
    assert [type(r).__name__ for r in records] == ["Quarantined", "Conversation"]
    assert records[0].code == "E007" and records[0].conversation_id == "c1"


def test_parquet_conversation_rows_and_turn_rows(tmp_path):
    conversations = tmp_path / "conversations.parquet"
    pq.write_table(pa.Table.from_pylist([GOOD, _with(conversation_id="c2", turns=[])]), conversations)
    records = list(load(conversations))
    assert isinstance(records[0], Conversation) and records[0].turns[1].text == GOOD["turns"][1]["text"]
    assert records[1].code == "E005"
    turns = tmp_path / "turns.parquet"
    pq.write_table(pa.Table.from_pylist([{"conversation_id": "c9", "role": t["role"], "text": t["text"]}
                                         for t in GOOD["turns"]]), turns)
    (loaded,) = load(turns)
    assert isinstance(loaded, Conversation) and len(loaded.turns) == 2


def test_unknown_format_refused_unreadable_files_quarantined(tmp_path):
    with pytest.raises(RecordError, match=r"E040.*unknown format '\.txt'"):
        load(tmp_path / "month.txt")
    (missing,) = load(tmp_path / "absent.jsonl")
    assert missing.code == "E040" and missing.row is None
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 not really parquet")
    (broken,) = load(corrupt)
    assert broken.code == "E040" and str(corrupt) in broken.reason


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_results_round_trip(tmp_path, pipeline, suffix):
    from qa_engine.schema import parse_conversation
    report = pipeline.score(parse_conversation(GOOD))
    path = tmp_path / f"out.{suffix}"
    with ResultWriter(path) as writer:
        writer.write(report)
    (row,) = read_results(path)
    assert row["conversation_id"] == "c1" and row["score"] == report.score
    assert row["versions"]["scorecard"] == pipeline.scorecard.id
