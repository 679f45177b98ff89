"""The installed ``qa-engine`` command, run as a user runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SAMPLES
from qa_engine.io import read_results

EXE = shutil.which("qa-engine") or str(Path(sys.executable).with_name("qa-engine"))


def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300,
                            env={"COLUMNS": "200", "PATH": str(Path(sys.executable).parent), "LANG": "C.UTF-8"})
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
    quarantine = [json.loads(line) for line in (tmp_path / "out" / "results.quarantine.jsonl").read_text().splitlines()]
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
    result = subprocess.run([EXE, *args], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
