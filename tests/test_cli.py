"""The installed ``qa-engine`` command, run as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pyarrow as pa
import pyarrow.parquet as pq

from conftest import SAMPLES
from qa_engine.io import read_results

EXE = shutil.which("qa-engine") or str(Path(sys.executable).with_name("qa-engine"))


# the code under test, also where it is not the installed copy (a worktree run with PYTHONPATH)
ENV = {"COLUMNS": "200", "PATH": str(Path(sys.executable).parent), "LANG": "C.UTF-8",
       **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {})}


def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300, env=ENV)
    if ok:
        assert result.returncode == 0, result.stderr + result.stdout
    return result


def test_check_json():
    result = run("check", "亲，这款是全网最好的，明天一定发货", "--json")
    payload = json.loads(result.stdout)
    findings = payload["findings"]
    assert {f["category"] for f in findings} == {"ad_law", "overpromise"}
    for finding in findings:
        assert payload["text"][finding["start"]:finding["end"]] == finding["evidence"]
        assert finding["citation"] and finding["rewrite"]
    assert "privacy" in payload["versions"]["rule_packs"]


def test_check_table_and_explain():
    table = run("check", "亲，这款是全網最好的").stdout
    assert "全網最好" in table and "广告法" in table
    assert "No violations" in run("check", "您是第一次来我们店吗").stdout
    explained = run("check", "您是第一次来我们店吗", "--explain").stdout
    assert "第一" in explained and "exception" in explained


def test_score_jsonl_with_quarantine(tmp_path):
    source = tmp_path / "in.jsonl"
    good = (SAMPLES / "sample_month.jsonl").read_text(encoding="utf-8").splitlines()[:5]
    source.write_text("\n".join([*good, "{broken", '{"conversation_id": "x", "turns": []}']) + "\n", encoding="utf-8")
    out = tmp_path / "out" / "results.parquet"
    result = run("score", str(source), "-o", str(out), "--no-progress")
    assert "records in = scored + quarantined: 7 = 5 + 2" in result.stdout
    assert len(read_results(out)) == 5
    quarantine = [json.loads(line) for line in
                  (tmp_path / "out" / "results.parquet.quarantine.jsonl").read_text().splitlines()]
    assert [(q["row"], q["code"]) for q in quarantine] == [(6, "E001"), (7, "E005")]
    assert "quarantined" in result.stderr and ":6 E001" in result.stderr


def test_score_is_byte_identical_twice(tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    sample = str(SAMPLES / "sample_month.jsonl")
    run("score", sample, "-o", str(first), "--no-progress")
    run("score", sample, "-o", str(second), "--no-progress")
    assert first.read_bytes() == second.read_bytes()


def test_rules_list_and_validate(tmp_path):
    listing = run("rules", "list").stdout
    assert "ad_law" in listing and "privacy.resident_id" in listing
    assert "ok" in run("rules", "validate").stdout
    bad = tmp_path / "ad_law.yaml"
    bad.write_text('pack: ad_law\nversion: "x"\ncategory: ad_law\nrules:\n  - id: ad_law.broken\n    description: d\n'
                   '    category: ad_law\n    severity: fatal\n    citation: c\n    terms: [最好]\n    rewrite: r\n',
                   encoding="utf-8")
    refused = run("rules", "validate", str(bad), ok=False)
    assert refused.returncode == 1
    assert "E010" in refused.stdout and "ad_law.broken" in refused.stdout and "severity" in refused.stdout
    assert str(bad) in refused.stdout.replace("\n", "")


@pytest.mark.parametrize("args", [["score", "missing.jsonl", "-o", "x.jsonl"], ["score", "a.txt", "-o", "x.jsonl"]])
def test_score_usage_errors(tmp_path, args):
    (tmp_path / "a.txt").write_text("x")
    result = subprocess.run([EXE, *args], capture_output=True, text=True, cwd=tmp_path, timeout=120, env=ENV)
    assert result.returncode == 2


# --- issue #12 ------------------------------------------------------------------------------------------------------

GOOD = json.loads((SAMPLES / "sample_month.jsonl").read_text(encoding="utf-8").splitlines()[0])


def _quarantine(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_score_goes_on_past_records_that_used_to_crash_it(tmp_path):
    deep = tmp_path / "deep.jsonl"
    deep.write_text(json.dumps(GOOD, ensure_ascii=False) + "\n" + '{"conversation_id": "d", "metadata": ' + "[" * 3000
                    + "]" * 3000 + "}\n", encoding="utf-8")
    wide = tmp_path / "wide.csv"
    wide.write_text(f"conversation_id,role,text\nw1,agent,{'好' * 131_073}\nw2,agent,您好\n", encoding="utf-8")
    meta = tmp_path / "meta.parquet"
    pq.write_table(pa.Table.from_pylist([{**GOOD, "conversation_id": "p1", "metadata": "not json"}]), meta)
    out = tmp_path / "out.jsonl"
    result = run("score", str(deep), str(wide), str(meta), "-o", str(out), "--no-progress")
    assert "Traceback" not in result.stderr
    assert [q["code"] for q in _quarantine(tmp_path / "out.jsonl.quarantine.jsonl")] == ["E045", "E006", "E001"]
    assert [r["conversation_id"] for r in read_results(out)] == [GOOD["conversation_id"], "w2"]
    assert "records in = scored + quarantined: 5 = 2 + 3" in result.stdout


def test_score_unterminated_csv_quote_is_not_a_silent_loss(tmp_path):
    source = tmp_path / "quote.csv"
    source.write_text("conversation_id,role,text\n"
                      "c1,customer,\"这个耳机降噪怎么样\n"
                      "c1,agent,亲，降噪是全网最好的\n"
                      "c2,customer,发货了吗\n"
                      "c2,agent,亲，已经发货了\"\n"
                      "c2,agent,还有别的问题吗\n"
                      "c3,customer,你好\nc3,agent,亲，您好\n", encoding="utf-8")
    result = run("score", str(source), "-o", str(tmp_path / "out.jsonl"), "--no-progress")
    assert [r["conversation_id"] for r in read_results(tmp_path / "out.jsonl")] == ["c3"]
    quarantine = _quarantine(tmp_path / "out.jsonl.quarantine.jsonl")
    assert [(q["code"], q["conversation_id"]) for q in quarantine] == [("E009", "c1"), ("E009", "c2")]
    assert "records in = scored + quarantined: 4 = 2 + 2" in result.stdout


def test_quarantine_file_is_named_after_the_whole_output(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(GOOD, ensure_ascii=False) + "\n{broken\n", encoding="utf-8")
    run("score", str(source), "-o", str(tmp_path / "x.jsonl"), "--no-progress")
    source.write_text(json.dumps(GOOD, ensure_ascii=False) + '\n{"conversation_id": "e", "turns": []}\n',
                      encoding="utf-8")
    run("score", str(source), "-o", str(tmp_path / "x.parquet"), "--no-progress")
    assert _quarantine(tmp_path / "x.jsonl.quarantine.jsonl")[0]["code"] == "E001"
    assert _quarantine(tmp_path / "x.parquet.quarantine.jsonl")[0]["code"] == "E005"
    refused = run("score", str(source), "-o", str(source), "--no-progress", ok=False)
    assert refused.returncode == 2 and "overwrite an input" in refused.stderr
    assert source.read_text(encoding="utf-8").startswith("{")


def test_empty_input_warns(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    result = run("score", str(empty), "-o", str(tmp_path / "out.jsonl"), "--no-progress")
    assert "holds no records" in result.stderr and "nothing was scored" in result.stderr


def test_fail_on_severity_exit_codes(tmp_path):
    assert run("check", "亲，这款是全网最好的", "--fail-on", "critical", ok=False).returncode == 1
    assert run("check", "亲，这款是全网最好的", "--fail-on", "critical", "--json", ok=False).returncode == 1
    assert run("check", "亲，您好", "--fail-on", "minor").returncode == 0
    assert run("check", "亲，这款是全网最好的").returncode == 0
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(GOOD, ensure_ascii=False) + "\n", encoding="utf-8")
    assert run("score", str(source), "-o", str(tmp_path / "a.jsonl"), "--no-progress").returncode == 0
    assert any(f["kind"] == "violation" for r in read_results(tmp_path / "a.jsonl") for f in r["findings"])
    failing = run("score", str(source), "-o", str(tmp_path / "b.jsonl"), "--no-progress", "--fail-on", "minor",
                  ok=False)
    assert failing.returncode == 1 and "severity minor or higher" in failing.stderr
    assert len(read_results(tmp_path / "b.jsonl")) == 1  # results are written all the same


def test_strict_and_limits_from_options_and_config(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({**GOOD, "shop_id": "s1"}, ensure_ascii=False) + "\n", encoding="utf-8")
    run("score", str(source), "-o", str(tmp_path / "a.jsonl"), "--no-progress")
    assert len(read_results(tmp_path / "a.jsonl")) == 1
    run("score", str(source), "-o", str(tmp_path / "b.jsonl"), "--no-progress", "--strict")
    assert _quarantine(tmp_path / "b.jsonl.quarantine.jsonl")[0]["code"] == "E044"
    run("score", str(source), "-o", str(tmp_path / "c.jsonl"), "--no-progress", "--max-turns", "2")
    assert _quarantine(tmp_path / "c.jsonl.quarantine.jsonl")[0]["code"] == "E043"
    config = tmp_path / "run.yaml"
    config.write_text((SAMPLES.parent / "conf" / "default.yaml").read_text(encoding="utf-8")
                      + "limits:\n  max_conversation_chars: 10\n", encoding="utf-8")
    run("score", str(source), "-o", str(tmp_path / "d.jsonl"), "--no-progress", "-c", str(config))
    assert "max_conversation_chars" in _quarantine(tmp_path / "d.jsonl.quarantine.jsonl")[0]["reason"]
    config.write_text("limits:\n  max_turnz: 10\n", encoding="utf-8")
    refused = run("score", str(source), "-o", str(tmp_path / "e.jsonl"), "-c", str(config), ok=False)
    assert refused.returncode == 2 and "max_turnz" in refused.stderr


def test_a_lost_record_fails_the_run(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import qa_engine.cli as cli
    from qa_engine.io import FileReader

    class Lossy(FileReader):  # a loader bug: drops the first conversation
        def __iter__(self):
            entries = super().__iter__()
            next(entries)
            yield from entries

    monkeypatch.setattr(cli, "FileReader", Lossy)
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps({**GOOD, "conversation_id": f"c{i}"}, ensure_ascii=False) for i in range(2)),
                      encoding="utf-8")
    result = CliRunner().invoke(cli.app, ["score", str(source), "-o", str(tmp_path / "out.jsonl"), "--no-progress"])
    assert result.exit_code == 3
    assert "records in = scored + quarantined: 2 = 1 + 0" in result.output and "MISMATCH" in result.output


def test_train_never_overwrites_the_shipped_model_by_default(tmp_path, monkeypatch):
    import types

    import typer
    from typer.testing import CliRunner

    from models import SHIPPED_MODEL
    from models.cli import train

    calls = []
    fake = types.ModuleType("models.train")
    fake.train = lambda config: calls.append(config) or {"timings": {"total_s": 0}}
    monkeypatch.setitem(sys.modules, "models.train", fake)
    app = typer.Typer()
    app.command()(train)
    runner = CliRunner()
    refused = runner.invoke(app, ["--output", str(SHIPPED_MODEL)])
    assert refused.exit_code == 2 and "--overwrite-shipped" in refused.output and not calls
    assert runner.invoke(app, ["--run-dir", str(tmp_path)]).exit_code == 0
    (made,) = calls
    assert Path(made.output).parent == tmp_path and Path(made.output).resolve() != SHIPPED_MODEL.resolve()
    assert runner.invoke(app, ["--output", str(SHIPPED_MODEL), "--overwrite-shipped"]).exit_code == 0
    assert Path(calls[1].output) == SHIPPED_MODEL
