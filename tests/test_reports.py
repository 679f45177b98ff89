"""Reports over the bundled sample month's results: every format, masking, filters, verdicts, errors."""

from __future__ import annotations

import csv
import io
from collections import Counter
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

openpyxl = pytest.importorskip("openpyxl")

from batch.reports.build import build_report  # noqa: E402
from batch.reports.results import Filters, load_results  # noqa: E402
from batch.reports.reviews import import_verdicts  # noqa: E402
from batch.reports.violations import MARK_CLOSE, MARK_OPEN, segments  # noqa: E402
from batch.shards import read_table  # noqa: E402
from conftest import SAMPLES  # noqa: E402
from qa_engine.errors import ResultsError  # noqa: E402
from qa_engine.findings import Severity  # noqa: E402
from rules.masking import MaskedSpan, PersonalDataMasker  # noqa: E402

EXE = str(Path(sys.executable).with_name("qa-engine"))
PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
SAMPLE_PHONE = "13812345678"  # typed by agents in the sample month (invented number)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def score_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("score") / "results.jsonl"
    result = run("score", str(SAMPLES / "sample_month.jsonl"), "-o", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def batch_folder(tmp_path_factory) -> Path:
    pytest.importorskip("ray")
    from batch.job import run_job

    inputs = tmp_path_factory.mktemp("month")
    lines = (SAMPLES / "sample_month.jsonl").read_text(encoding="utf-8").splitlines()
    for index in range(3):
        (inputs / f"part{index}.jsonl").write_text("\n".join(lines[index::3]) + "\n", encoding="utf-8")
    out = tmp_path_factory.mktemp("batch") / "out"
    run_job([str(inputs)], out)
    return out


def expected_violations(folder: Path) -> list[dict]:
    """Violation findings read straight from the batch output, independently of the report code."""
    return [f for f in read_table(folder, "findings").to_pylist() if f["kind"] == "violation"]


def csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    text = path.read_bytes().decode("utf-8")
    assert text.startswith("\ufeff"), "CSV must carry a BOM for Excel"
    lines = text[1:].splitlines(keepends=True)
    preamble = [line for line in lines if line.startswith(("#", '"#'))]
    body = "".join(line for line in lines if not line.startswith(("#", '"#')))
    return preamble, list(csv.DictReader(io.StringIO(body)))


# --- the sample month's results contain what the tests look for -------------------------------

def test_sample_results_contain_personal_data_to_mask(score_file):
    assert SAMPLE_PHONE in score_file.read_text(encoding="utf-8")


def test_batch_outputs_carry_transcripts_and_finding_ids(batch_folder):
    conversation = read_table(batch_folder, "conversations").to_pylist()[0]
    assert conversation["transcript"][0]["text"] and conversation["transcript"][0]["role"] in ("customer", "agent")
    finding = read_table(batch_folder, "findings").to_pylist()[0]
    assert finding["finding_id"] == f"{finding['conversation_id']}#{finding['finding_index']}"


# --- CSV ----------------------------------------------------------------------------------------

def test_csv_one_row_per_violation_masked_with_citations(batch_folder, tmp_path):
    out = tmp_path / "violations.csv"
    result = run("report", str(batch_folder), "-o", str(out))
    assert result.returncode == 0, result.stderr
    preamble, rows = csv_rows(out)
    expected = expected_violations(batch_folder)
    assert len(rows) == len(expected) > 100
    assert sorted(r["finding_id"] for r in rows) == sorted(f"{f['conversation_id']}#{f['finding_index']}" for f in expected)
    assert any("personal_data: masked" in line for line in preamble)
    text = out.read_text(encoding="utf-8-sig")
    assert not PHONE.search(text) and "138****5678" in text
    law = [r for r in rows if r["category"] in ("ad_law", "overpromise", "efficacy", "privacy", "conduct")]
    assert law and all("《" in r["citation"] for r in law)
    ad = next(r for r in rows if r["rule_id"].startswith("ad_law."))
    assert f"{MARK_OPEN}{ad['evidence']}{MARK_CLOSE}" in ad["turn_text"]
    assert ad["versions"].startswith("engine ") and "ad_law=" in ad["versions"]
    assert ad["detector"].startswith("qa.rules.v1@")


def test_unmask_is_explicit_and_recorded(batch_folder, tmp_path):
    out = tmp_path / "unmasked.csv"
    assert run("report", str(batch_folder), "-o", str(out), "--unmask").returncode == 0
    preamble, rows = csv_rows(out)
    assert SAMPLE_PHONE in out.read_text(encoding="utf-8-sig")
    assert any("personal_data: UNMASKED" in line and "--unmask by" in line for line in preamble)
    privacy = [r for r in rows if r["rule_id"] == "privacy.mobile_number"]
    assert privacy and all(PHONE.search(r["evidence"]) for r in privacy)


# --- XLSX ---------------------------------------------------------------------------------------

def test_xlsx_has_rows_filters_frozen_header_widths_and_charts(batch_folder, tmp_path):
    out = tmp_path / "report.xlsx"
    assert run("report", str(batch_folder), "-o", str(out)).returncode == 0
    book = openpyxl.load_workbook(out)
    assert book.sheetnames[:3] == ["Report", "Violations", "Summary"]
    report = {row[0]: row[1] for row in book["Report"].iter_rows(values_only=True)}
    assert report["personal_data"].startswith("masked") and "rule_packs" in report["versions"]
    sheet = book["Violations"]
    header = [c.value for c in sheet[1]]
    expected = expected_violations(batch_folder)
    assert sheet.max_row - 1 == len(expected)
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:{openpyxl.utils.get_column_letter(len(header))}{len(expected) + 1}"
    assert sheet.column_dimensions["M"].width > 50  # the turn in context is readable
    values = [c for row in sheet.iter_rows(min_row=2, values_only=True) for c in row if isinstance(c, str)]
    assert not any(PHONE.search(v) for v in values)
    charts = book["Summary"]._charts
    assert len(charts) == 2
    assert {type(c).__name__ for c in charts} == {"BarChart"}  # column and bar charts are both BarChart
    by_category = {}
    for category, count in book["Summary"].iter_rows(min_row=3, max_col=2, values_only=True):
        if category is None:  # the per-category table ends at the first empty row
            break
        by_category[category] = count
    assert sum(by_category.values()) == len(expected)
    assert book["by_rule"].auto_filter.ref and book["by_agent"].freeze_panes == "A2"


# --- filters ------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, keep", [
    (["--team", "售后一组"], lambda f, c: c["team"] == "售后一组"),
    (["--agent", "a101", "--agent", "a303"], lambda f, c: c["agent_id"] in ("a101", "a303")),
    (["--from", "2026-10-10", "--to", "2026-10-12"], lambda f, c: "2026-10-10" <= c["day"] <= "2026-10-12"),
    (["--rule", "privacy.*"], lambda f, c: f["rule_id"].startswith("privacy.")),
    (["--severity", "critical"], lambda f, c: f["severity"] == "critical"),
])
def test_filters_keep_exactly_what_they_name(batch_folder, tmp_path, args, keep):
    out = tmp_path / "filtered.csv"
    result = run("report", str(batch_folder), "-o", str(out), *args)
    assert result.returncode == 0, result.stderr
    conversations = {c["conversation_id"]: c for c in read_table(batch_folder, "conversations").to_pylist()}
    expected = [f for f in expected_violations(batch_folder) if keep(f, conversations[f["conversation_id"]])]
    _, rows = csv_rows(out)
    assert 0 < len(rows) == len(expected) < len(expected_violations(batch_folder))


def test_filters_that_match_nothing_give_an_empty_report_and_say_so(score_file, tmp_path):
    out = tmp_path / "empty.xlsx"
    result = run("report", str(score_file), "-o", str(out), "--team", "不存在的组")
    assert result.returncode == 0 and "no conversation matches the filters (team 不存在的组)" in result.stderr
    assert openpyxl.load_workbook(out)["Violations"].max_row == 1


def test_bad_filter_values_are_refused(batch_folder, tmp_path):
    result = run("report", str(batch_folder), "-o", str(tmp_path / "x.csv"), "--from", "10/01/2026")
    assert result.returncode != 0 and "2026-11-01" in result.stdout + result.stderr
    result = run("report", str(batch_folder), "-o", str(tmp_path / "x.pdf"))
    assert result.returncode == 2 and "unknown report format 'pdf'" in result.stderr


# --- score files and errors --------------------------------------------------------------------

def test_score_file_and_batch_folder_give_the_same_report(score_file, batch_folder):
    from_file = load_results(score_file)
    from_batch = load_results(batch_folder)
    key = lambda f: (f["finding_id"], f["rule_id"], f["evidence"])  # noqa: E731
    assert sorted(map(key, from_file.violations)) == sorted(map(key, from_batch.violations))
    assert from_file.versions() == from_batch.versions() and "rule_packs" in from_file.versions()


def test_missing_and_malformed_results_are_clear_errors(batch_folder, score_file, tmp_path):
    cases = {}
    cases["missing"] = tmp_path / "nowhere"
    (tmp_path / "empty").mkdir()
    cases["not a batch output folder"] = tmp_path / "empty"
    shutil.copytree(batch_folder, tmp_path / "nocv")
    shutil.rmtree(tmp_path / "nocv" / "conversations")
    cases["conversations/ holds no committed shard"] = tmp_path / "nocv"
    shutil.copytree(batch_folder, tmp_path / "corrupt")
    shard = sorted((tmp_path / "corrupt" / "findings").glob("*.parquet"))[0]
    shard.write_bytes(b"PAR1 not really parquet")
    cases[f"{shard}: unreadable Parquet"] = tmp_path / "corrupt"
    lines = score_file.read_text(encoding="utf-8").splitlines()
    (tmp_path / "bad.jsonl").write_text("\n".join([lines[0], "{oops", *lines[1:3]]) + "\n", encoding="utf-8")
    cases["bad.jsonl:2: invalid JSON"] = tmp_path / "bad.jsonl"
    (tmp_path / "wrong.jsonl").write_text(json.dumps({"conversation_id": "x", "score": "high"}) + "\n", encoding="utf-8")
    cases["wrong.jsonl:1: not a score result"] = tmp_path / "wrong.jsonl"
    for message, path in cases.items():
        with pytest.raises(ResultsError, match=re.escape(message if message != "missing" else "does not exist")):
            load_results(path)
    result = run("report", str(tmp_path / "corrupt"), "-o", str(tmp_path / "r.xlsx"))
    assert result.returncode == 2 and "E050" in result.stderr and not (tmp_path / "r.xlsx").exists()


# --- reviewer verdicts --------------------------------------------------------------------------

def test_review_import_quarantines_bad_rows_and_reports_show_verdicts(batch_folder, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(batch_folder, results)
    violations = sorted(expected_violations(results), key=lambda f: (f["rule_id"], f["conversation_id"]))
    ad = [f for f in violations if f["rule_id"].startswith("ad_law.")][:4]
    ids = [f"{f['conversation_id']}#{f['finding_index']}" for f in ad]
    verdicts = tmp_path / "verdicts.csv"
    verdicts.write_text(
        "finding_id,verdict,reviewer,reason\n"
        f"{ids[0]},confirm,王芳,绝对化用语\n{ids[1]},confirm,王芳,\n{ids[2]},overturn,李雷,引用顾客原话\n"
        f"{ids[3]},确认,李雷,\nnot-a-finding#0,confirm,王芳,\n{ids[0]},maybe,王芳,\n{ids[1]},confirm,,\n",
        encoding="utf-8-sig")
    result = run("review", "import", str(verdicts), "--results", str(results))
    assert result.returncode == 0, result.stderr
    assert "7 = 4 + 0 + 0 + 3" in result.stdout
    (quarantine,) = (results / "reviews").glob("verdicts.quarantine-*.jsonl")
    bad = [json.loads(line) for line in quarantine.read_text(encoding="utf-8").splitlines()]
    assert [(b["row"], b["reason"].split(":")[0]) for b in bad] == [
        (6, "field 'finding_id'"), (7, "field 'verdict'"), (8, "field 'reviewer' is empty")]
    loaded = load_results(results)
    assert {i: loaded.verdicts[i]["verdict"] for i in ids} == {
        ids[0]: "confirmed", ids[1]: "confirmed", ids[2]: "overturned", ids[3]: "confirmed"}

    out = tmp_path / "reviewed.csv"
    assert run("report", str(results), "-o", str(out)).returncode == 0
    preamble, rows = csv_rows(out)
    reviewed = {r["finding_id"]: (r["review"], r["reviewer"]) for r in rows if r["review"] != "unreviewed"}
    assert reviewed[ids[2]] == ("overturned", "李雷") and len(reviewed) == 4
    assert any("reviewed: 4 of" in line for line in preamble)

    # a later verdict on the same finding replaces the earlier one
    again = tmp_path / "again.csv"
    again.write_text(f"finding_id,verdict,reviewer\n{ids[2]},confirm,张伟\n", encoding="utf-8")
    assert run("review", "import", str(again), "--results", str(results)).returncode == 0
    assert load_results(results).verdicts[ids[2]]["reviewer"] == "张伟"


def test_reviewers_fill_in_the_csv_export_and_import_it_back(batch_folder, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(batch_folder, results)
    export = tmp_path / "to_review.csv"
    assert run("report", str(results), "-o", str(export), "--rule", "ad_law.*").returncode == 0
    lines = export.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    preamble = [line for line in lines if line.startswith(("#", '"#'))]
    rows = list(csv.DictReader(io.StringIO("".join(lines[len(preamble):]))))
    rows[0].update(review="confirm", reviewer="王芳", review_reason="绝对化用语")
    rows[1].update(review="overturn", reviewer="王芳", review_reason="顾客原话")
    rows[2].update(review="perhaps", reviewer="王芳")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    export.write_text("".join(preamble) + buffer.getvalue(), encoding="utf-8-sig")
    summary = import_verdicts(export, results)
    assert (summary.imported, summary.unchanged, summary.quarantined, summary.unreviewed) == (2, 0, 1, len(rows) - 3)
    bad = json.loads(summary.quarantine_file.read_text(encoding="utf-8"))
    assert bad["row"] == len(preamble) + 4 and "'perhaps'" in bad["reason"]  # the file's own line number
    assert load_results(results).verdicts[rows[1]["finding_id"]]["reason"] == "顾客原话"
    again = import_verdicts(export, results)  # importing the same file twice changes nothing
    assert (again.imported, again.unchanged) == (0, 2)


def test_review_import_refuses_a_file_without_required_columns(batch_folder, tmp_path):
    verdicts = tmp_path / "v.csv"
    verdicts.write_text("id,verdict\nx,confirm\n", encoding="utf-8")
    with pytest.raises(ResultsError, match="row 1: missing column.*finding_id.*reviewer"):
        import_verdicts(verdicts, batch_folder)
    assert not (batch_folder / "reviews").exists()


# --- masking and marking units ------------------------------------------------------------------

def test_masker_masks_customer_and_agent_personal_data():
    masker = PersonalDataMasker()
    assert masker.mask("我的电话是 138 1234 5678，身份证11010519491231002X") == "我的电话是 138****5678，身份证****002X"
    assert masker.mask("卡号6222021234567890128，寄到北京市朝阳区建国路88号3单元502室") == \
        "卡号****0128，寄到北京市朝阳区****"
    assert masker.mask("订单号：1381234567890 已发货") == "订单号：1381234567890 已发货"


def test_a_mark_never_reveals_part_of_a_masked_number():
    text = "您的手机号是13812345678对吗"
    masks = (MaskedSpan(6, 17, "138****5678", "privacy.mobile_number"),)
    pieces = segments(text, masks, [(9, 12, True)])  # a mark inside the number
    assert [(p.text, p.mark) for p in pieces] == [("您的手机号是", None), ("138****5678", True), ("对吗", None)]
    pieces = segments("全网最好，百分百有效", (), [(0, 4, "a"), (2, 4, "b"), (5, 8, "c")])
    assert [(p.text, p.mark) for p in pieces] == [("全网最好", "a"), ("，", None), ("百分百", "c"), ("有效", None)]


def test_filters_describe_themselves():
    filters = Filters(rules=("privacy.*",), severity=Severity.MAJOR)
    assert filters.describe() == "rule privacy.*; severity ≥ major"
    assert filters.keeps_finding({"rule_id": "privacy.bank_card", "severity": "critical"})
    assert not filters.keeps_finding({"rule_id": "privacy.bank_card", "severity": "minor"})


# --- HTML dashboard -----------------------------------------------------------------------------

def test_dashboard_is_offline_masked_and_links_every_queued_conversation(batch_folder, tmp_path):
    out = tmp_path / "dashboard.html"
    summary = build_report(batch_folder, out)
    html = out.read_text(encoding="utf-8")
    assert summary.format == "html" and summary.violations == len(expected_violations(batch_folder))
    assert not re.search(r"<script|<link|src=\"http|href=\"http|@import", html)  # nothing to fetch
    assert not PHONE.search(html) and "138****5678" in html
    assert html.count('<svg class="chart"') == 10
    links = set(re.findall(r'href="#c-([^"]+)"', html))
    anchors = set(re.findall(r'<section class="transcript" id="c-([^"]+)"', html))
    assert links and links <= anchors


def test_dashboard_renders_in_chromium_with_charts_and_transcripts(batch_folder, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian chromium is not installed (.ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    image = pytest.importorskip("PIL.Image")
    results = tmp_path / "results"
    shutil.copytree(batch_folder, results)
    ad = [f for f in expected_violations(results) if f["rule_id"].startswith("ad_law.")][:2]
    verdicts = tmp_path / "v.csv"
    verdicts.write_text("finding_id,verdict,reviewer\n" + "".join(
        f"{f['conversation_id']}#{f['finding_index']},{v},王芳\n" for f, v in zip(ad, ("confirm", "overturn"))),
        encoding="utf-8")
    import_verdicts(verdicts, results)
    out = tmp_path / "dashboard.html"
    build_report(results, out)
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("request", lambda request: errors.append(f"fetched {request.url}")
                if not request.url.startswith("file://") else None)
        page.goto(out.as_uri())
        assert page.locator("svg.chart").count() == 10
        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot))
        with image.open(shot) as picture:  # the charts are drawn: many distinct colours, not a blank page
            assert len(picture.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50
        assert page.locator("#chart-per_day rect").count() > 30  # a stacked column per day and category
        assert "50%" in page.locator("text=reviewed findings").inner_text()  # one confirmed, one overturned
        link = page.locator('a[href^="#c-"]').first
        target = link.get_attribute("href")
        transcript = page.locator(target)
        assert not transcript.is_visible()
        link.click()
        assert transcript.is_visible() and transcript.locator(".turn").count() >= 2
        assert transcript.locator("mark").count() >= 1  # its violations highlighted
        browser.close()
    assert errors == []


def test_model_findings_and_model_provenance_reach_the_auditor_report(tmp_path):
    pytest.importorskip("onnxruntime")
    sample = tmp_path / "month.jsonl"
    sample.write_text("".join((SAMPLES / "sample_month.jsonl").read_text(encoding="utf-8").splitlines(True)[:30]),
                      encoding="utf-8")
    results = tmp_path / "results.jsonl"
    config = SAMPLES.parent / "conf" / "models.yaml"
    assert run("score", str(sample), "-o", str(results), "-c", str(config), "--no-progress").returncode == 0
    out = tmp_path / "r.csv"
    assert run("report", str(results), "-o", str(out)).returncode == 0
    _, rows = csv_rows(out)
    from models import SHIPPED_MODEL
    from models.artefact import ModelArtefact

    shipped = ModelArtefact.load(SHIPPED_MODEL)
    assert rows and all(f"model qa_zh_char={shipped.provenance}" in r["versions"]
                        and f"qa_e5_teacher={shipped.manifest['teacher']['provenance']}" in r["versions"] for r in rows)
    assert any(r["detector"].startswith("qa.violation.model.v1@") for r in rows)


# --- issue #12: numbers a QA lead can trust --------------------------------------------------------

def test_first_contact_resolution_is_judged_across_a_customers_contacts():
    from qa_engine.tables import fcr_note, first_contact_resolution

    contacts = [("c1", "2026-10-01T10:00:00+08:00", "resolved"),   # back on the 4th: not first-contact
                ("c1", "2026-10-04T09:00:00+08:00", "resolved"),   # no return in the 26 days after
                ("c2", "2026-10-02T10:00:00", "resolved"),         # no zone: read as UTC
                ("c2", "2026-10-09T11:00:00+00:00", "escalated"),  # 7 days and 1 h later, outside the window
                ("c3", "2026-10-03T10:00:00+08:00", None),         # no resolution label
                (None, "2026-10-05T10:00:00+08:00", "resolved"),   # no customer id
                ("c4", "2026-10-28T10:00:00+08:00", "resolved"),   # window reaches past the data's last contact
                ("c5", "2026-10-30T10:00:00+08:00", "unresolved")]
    assert first_contact_resolution(contacts) == [False, True, True, False, None, None, None, False]
    assert first_contact_resolution(contacts, window_days=8)[2] is False  # a longer window sees c2 come back
    assert fcr_note(3, 0, 0).startswith("not measured: no customer_id")
    assert fcr_note(3, 2, 0).startswith("not measured") and fcr_note(3, 2, 1) == "measured on 1 of 3 conversations"
    assert fcr_note(3, 3, 3) == ""


def test_dashboard_says_fcr_is_not_measured_without_customer_ids(score_file, tmp_path):
    results = load_results(score_file)
    assert all(c["first_contact_resolution"] is None for c in results.conversations)
    out = tmp_path / "dashboard.html"
    build_report(score_file, out)
    html = out.read_text(encoding="utf-8")
    kpi = re.search(r'<div class="kpi"><b>([^<]*)</b><span>first-contact resolution[^<]*</span>', html)
    assert kpi and kpi.group(1) == "not measured"
    assert "no customer_id" in html


def test_dashboard_fcr_counts_customers_who_came_back(tmp_path):
    lines = (SAMPLES / "sample_month.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    for index, record in enumerate(records):  # 30 customers, each coming back several times
        record["metadata"] = {**record.get("metadata", {}), "customer_id": f"c{index % 30}"}
    month = tmp_path / "month.jsonl"
    month.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    assert run("score", str(month), "-o", str(tmp_path / "r.jsonl"), "--no-progress").returncode == 0
    results = load_results(tmp_path / "r.jsonl")
    rows = results.conversations
    assert {r["customer_id"] for r in rows} == {f"c{i}" for i in range(30)}
    fcr = [r["first_contact_resolution"] for r in rows]
    resolved = [r["resolution"] == "resolved" for r in rows]
    assert any(f is not None for f in fcr) and any(f is False and r for f, r in zip(fcr, resolved))
    assert all(not f for f, r in zip(fcr, resolved) if not r)  # never first-contact resolved when not resolved
    from batch.reports.dashboard import _stats  # the rates the dashboard shows

    stats = _stats(rows, Counter())
    assert stats["fcr_rate"] is not None and stats["fcr_rate"] < stats["resolved_rate"]


def test_dashboard_charts_service_standards_apart_from_compliance(batch_folder, tmp_path):
    out = tmp_path / "dashboard.html"
    build_report(batch_folder, out)
    html = out.read_text(encoding="utf-8")
    figure = dict(re.findall(r'<figure id="chart-([a-z_]+)">(.*?)</figure>', html, re.S))
    compliance = figure["by_category"] + figure["per_day"]
    assert "ad_law" in compliance and "service" not in compliance
    service = figure["service_by_standard"] + figure["service_per_day"]
    assert "service.closing_invite" in service and "ad_law" not in service
