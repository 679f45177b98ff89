"""Loaders: every bad-input kind is quarantined with file, row, field and reason."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qa_engine.errors import RecordError
from qa_engine.io import Quarantined, ResultWriter, load, load_file, read_results
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


# --- issue #12: one bad record never stops a run; nothing is lost silently ---------------------------------------

def _jsonl(path, *records):
    path.write_bytes(b"\n".join(r if isinstance(r, bytes) else json.dumps(r, ensure_ascii=False).encode()
                                for r in records) + b"\n")
    return path


def _codes(records):
    return [r.code if isinstance(r, Quarantined) else r.conversation_id for r in records]


def test_jsonl_nested_thousands_of_levels_deep_is_quarantined(tmp_path):
    deep = b'{"conversation_id": "deep", "turns": [], "metadata": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    path = _jsonl(tmp_path / "deep.jsonl", GOOD, deep, _with(conversation_id="c2"))
    records = list(load(path))
    assert _codes(records) == ["c1", "E045", "c2"]
    assert records[1].row == 2 and "nested deeper" in records[1].reason


def test_jsonl_nested_under_the_parser_limit_but_over_max_depth(tmp_path):
    nested = _with(conversation_id="c9", metadata=json.loads("[" * 100 + "]" * 100))
    (bad,) = load(_jsonl(tmp_path / "d.jsonl", nested))
    assert bad.code == "E045" and bad.conversation_id == "c9"


def test_csv_field_over_the_csv_module_limit_is_quarantined(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("conversation_id,role,text\n"
                    f"c1,customer,{'好' * 131_073}\nc1,agent,您好\n"
                    "c2,customer,你好\nc2,agent,亲，您好\n", encoding="utf-8")
    records = list(load(path))
    assert _codes(records) == ["E006", "c2"]
    assert records[0].conversation_id == "c1" and records[0].records == 2 and "turns[0].text" in records[0].reason


def test_parquet_metadata_that_is_not_json_is_quarantined(tmp_path):
    rows = [{**GOOD, "metadata": json.dumps({"shop": "s1"})}, {**GOOD, "conversation_id": "c2", "metadata": "{oops"},
            {**GOOD, "conversation_id": "c3", "metadata": None}]
    path = tmp_path / "meta.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    records = list(load(path))
    assert _codes(records) == ["c1", "E001", "c3"]
    assert records[0].metadata == {"shop": "s1"} and "metadata" in records[1].reason


UNTERMINATED = ("conversation_id,role,text\n"
                "c1,customer,\"这个耳机降噪怎么样\n"
                "c1,agent,亲，降噪是全网最好的\n"
                "c2,customer,发货了吗\n"
                "c2,agent,亲，已经发货了\n")


def test_csv_unterminated_quote_quarantines_what_it_swallowed(tmp_path):
    path = tmp_path / "quote.csv"
    path.write_text(UNTERMINATED.replace("\n", "\nc0,agent,\"您好，\n请问有什么可以帮您\"\n", 1), encoding="utf-8")
    result = load_file(path)
    assert result.records_read == 2  # the quote ran to the end: the csv module sees one row more
    assert [c.conversation_id for c in result.conversations] == ["c0"]  # a legitimate multi-line text is kept
    (bad,) = result.quarantined
    assert bad.code == "E009" and bad.row == 4 and bad.conversation_id == "c1"
    assert "line 4" in bad.reason and "c1, c2" in bad.reason
    assert result.balanced


def test_csv_unterminated_quote_quarantines_the_rest_of_a_swallowed_conversation(tmp_path):
    path = tmp_path / "quote.csv"
    path.write_text(UNTERMINATED.replace("c2,agent,亲，已经发货了\n", "c2,agent,亲，已经发货了\"\nc2,agent,还有问题吗\n"),
                    encoding="utf-8")
    result = load_file(path)
    assert result.conversations == []
    assert [(q.code, q.conversation_id) for q in result.quarantined] == [("E009", "c1"), ("E009", "c2")]
    assert "swallowed" in result.quarantined[1].reason and result.balanced


def test_csv_row_with_an_unquoted_comma_is_quarantined_not_cut(tmp_path):
    path = tmp_path / "comma.csv"
    path.write_text("conversation_id,role,text\nc1,agent,您好,全网最好\nc2,agent,您好\n", encoding="utf-8")
    records = list(load(path))
    assert _codes(records) == ["E009", "c2"] and "4 fields" in records[0].reason


def test_unknown_fields_are_kept_in_metadata_and_refused_when_strict(tmp_path):
    record = _with(shop_id="s-88", customer_id="u1")
    record["turns"] = [dict(record["turns"][0], msg_id="m1"), record["turns"][1]]
    path = _jsonl(tmp_path / "extra.jsonl", record)
    (loaded,) = load(path)
    assert isinstance(loaded, Conversation) and loaded.customer_id == "u1"
    assert loaded.metadata == {"shop_id": "s-88", "turn_extra": [{"msg_id": "m1"}, {}]}
    (refused,) = load(path, strict=True)
    assert refused.code == "E044" and "shop_id" in refused.reason and "wrong type" not in refused.reason


def test_csv_unknown_columns_shared_go_to_the_conversation_varying_to_turns(tmp_path):
    path = tmp_path / "extra.csv"
    path.write_text("conversation_id,role,text,shop_id,msg_id\nc1,customer,你好,s1,m1\nc1,agent,您好,s1,m2\n",
                    encoding="utf-8")
    (loaded,) = load(path)
    assert loaded.metadata == {"shop_id": "s1", "turn_extra": [{"msg_id": "m1"}, {"msg_id": "m2"}]}
    (refused,) = load(path, strict=True)
    assert refused.code == "E044"


def test_jsonl_with_a_utf8_bom_keeps_its_first_record_utf16_is_refused_clearly(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n" + json.dumps(_with(conversation_id="c2")).encode())
    assert _codes(load(path)) == ["c1", "c2"]
    utf16 = tmp_path / "utf16.jsonl"
    utf16.write_text(json.dumps(GOOD) + "\n", encoding="utf-16")
    (refused,) = load(utf16)
    assert refused.code == "E040" and "UTF-16" in refused.reason and "UTF-8" in refused.reason


def test_duplicate_conversation_ids_are_quarantined_after_the_first(tmp_path):
    first = _jsonl(tmp_path / "a.jsonl", GOOD, _with(conversation_id="c2"), GOOD)
    second = _jsonl(tmp_path / "b.jsonl", _with(conversation_id="c2"))
    seen: dict[str, str] = {}
    records = list(load(first, seen=seen)) + list(load(second, seen=seen))
    assert _codes(records) == ["c1", "c2", "E041", "E041"]
    assert f"{first}:1" in records[2].reason and f"{first}:2" in records[3].reason


def test_limits_on_turns_characters_and_record_bytes(tmp_path):
    from qa_engine.schema import Limits
    many = _with(conversation_id="many", turns=[_turn()] * 5)
    long = _with(conversation_id="long", turns=[_turn(text="好" * 300)] * 2)
    path = _jsonl(tmp_path / "caps.jsonl", many, long, GOOD)
    limits = Limits(max_turns=4, max_conversation_chars=500, max_record_bytes=2500)
    records = list(load(path, limits=limits))
    assert _codes(records) == ["E043", "E043", "c1"]
    assert "max_turns" in records[0].reason and "max_conversation_chars" in records[1].reason
    (too_big,) = load(_jsonl(tmp_path / "big.jsonl", _with(turns=[_turn(text="好" * 1000)])), limits=limits)
    assert too_big.code == "E042" and "max_record_bytes" in too_big.reason


def test_an_oversize_record_is_kept_as_prefix_length_and_hash(tmp_path):
    import hashlib
    from qa_engine.io import RAW_KEPT
    garbage = b"x" * (5 * 1024 * 1024)  # over the default 4 MiB record limit
    path = _jsonl(tmp_path / "garbage.jsonl", garbage, GOOD)
    bad, good = load(path)
    assert bad.code == "E042" and isinstance(good, Conversation)
    assert len(bad.raw) == RAW_KEPT and bad.raw_bytes == len(garbage)
    assert bad.raw_sha256 == hashlib.sha256(garbage).hexdigest()
    small = list(load(_jsonl(tmp_path / "small.jsonl", b"{broken")))[0]
    assert small.raw == "{broken" and small.raw_bytes == 7


def test_lone_surrogates_and_huge_integers_are_quarantined(tmp_path):
    surrogate = b'{"conversation_id": "s1", "turns": [{"role": "agent", "text": "\\ud800"}]}'
    huge = b'{"conversation_id": "h1", "n": ' + b"9" * 5000 + b', "turns": []}'
    records = list(load(_jsonl(tmp_path / "odd.jsonl", surrogate, huge, GOOD)))
    assert _codes(records) == ["E007", "E001", "c1"]
    assert "turns[0].text" in records[0].reason


def test_load_file_counts_records_as_read(tmp_path):
    path = tmp_path / "month.csv"
    path.write_text("conversation_id,role,text\nc1,customer,你好\nc1,agent,您好\n,agent,x\nc2,boss,x\n\n",
                    encoding="utf-8")
    result = load_file(path)
    assert (result.records_read, result.records_scored, result.records_quarantined) == (4, 2, 2)
    assert result.balanced


def test_out_of_order_timestamps_give_unknown_times_and_a_flag(pipeline):
    from qa_engine.schema import parse_conversation
    backwards = _with(turns=[_turn(role="customer", text="在吗", timestamp="2026-10-01T10:00:30+08:00"),
                             _turn(text="亲，您好", timestamp="2026-10-01T10:00:00+08:00")])
    metrics = pipeline.score(parse_conversation(backwards)).metrics
    assert metrics.timestamps_out_of_order
    assert metrics.first_response_s is None and metrics.greeting_s is None and metrics.longest_agent_gap_s is None
    late_start = _with(start_time="2026-10-01T11:00:00+08:00")
    metrics = pipeline.score(parse_conversation(late_start)).metrics
    assert metrics.timestamps_out_of_order and metrics.greeting_s is None
    in_order = pipeline.score(parse_conversation(GOOD)).metrics
    assert not in_order.timestamps_out_of_order and in_order.first_response_s == 5.0


BAD_INPUTS = Path(__file__).parent / "bad_inputs"


def test_bad_inputs_corpus_yields_each_files_code_and_covers_every_code():
    from qa_engine.errors import ErrorCode
    from qa_engine.schema import Limits
    limits = Limits(max_turn_bytes=64, max_turns=8, max_conversation_chars=200, max_record_bytes=1024, max_depth=16)
    covered = set()
    for path in sorted(BAD_INPUTS.iterdir()):
        if path.suffix == ".md":
            continue
        expected = path.name.split("_", 1)[0]
        result = load_file(path, limits, strict=".strict." in path.name)
        assert {q.code for q in result.quarantined} == {expected}, (path.name, result.quarantined)
        assert result.balanced and result.records_read >= 1, path.name
        for quarantined in result.quarantined:
            assert quarantined.reason.startswith(expected) and quarantined.source == str(path)
        covered.add(expected)
    record_codes = {c.name for c in ErrorCode if c.name < "E010" or "E040" <= c.name < "E050"}
    assert covered == record_codes
