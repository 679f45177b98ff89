"""The scoring path: detectors, service standards, scorecard, provenance, determinism."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from conftest import conversation

from qa_engine.findings import FindingKind
from qa_engine.pipeline import Pipeline
from qa_engine.schema import Conversation, Role, Turn

T0 = datetime(2026, 10, 1, 10, 0, tzinfo=timezone(timedelta(hours=8)))


def timed(*turns: tuple[str, str, int]) -> Conversation:
    return Conversation(conversation_id="timed", start_time=T0, turns=tuple(
        Turn(role=role, text=text, timestamp=T0 + timedelta(seconds=offset)) for role, text, offset in turns))


GOOD_SERVICE = timed(
    ("customer", "我的快递三天了还没动，太慢了", 0),
    ("agent", "亲，您好，我是客服小美。非常抱歉让您久等了，我理解您的心情", 6),
    ("agent", "已为您联系快递催促，今天内会更新物流信息", 25),
    ("customer", "好的，谢谢", 40),
    ("agent", "不客气，麻烦您对本次服务做出评价哦，祝您生活愉快", 48),
)


def test_issue_example_fails_on_critical_violations(pipeline):
    findings = pipeline.check("亲，这款是全网最好的，明天一定发货")
    assert {f.category for f in findings} == {"ad_law", "overpromise"}
    by_category = {f.category: f for f in findings}
    assert by_category["ad_law"].evidence == "全网最好"
    assert "广告法" in by_category["ad_law"].citation and by_category["ad_law"].rewrite
    report = pipeline.score(conversation(("customer", "这个羽绒服怎么样"), ("agent", "亲，这款是全网最好的，明天一定发货")))
    assert not report.passed and report.score == 0.0
    assert any("ad_law" in reason for reason in report.auto_fail_reasons)


def test_good_service_passes_with_full_marks(pipeline):
    report = pipeline.score(GOOD_SERVICE)
    assert report.violations == []
    assert report.passed and report.score == 100.0
    assert report.empathy == "present" and report.resolution == "resolved"
    assert report.metrics.first_response_s == 6.0 and report.metrics.greeting_s == 6.0
    assert report.metrics.closing_invite and report.metrics.longest_agent_gap_s == 8.0


def test_missing_timestamps_give_null_time_metrics_not_zero(pipeline):
    report = pipeline.score(conversation(*[(t.role, t.text) for t in GOOD_SERVICE.turns]))
    metrics = report.metrics
    assert metrics.first_response_s is None and metrics.greeting_s is None and metrics.longest_agent_gap_s is None
    assert metrics.greeted and metrics.closing_invite
    assert not [f for f in report.violations if f.category == "service"]


def test_service_standard_breaches(pipeline):
    report = pipeline.score(timed(
        ("customer", "在吗？我要退货", 0),
        ("agent", "退货的话在订单页面申请就可以", 75),
        ("customer", "那运费谁出", 90),
        ("agent", "运费险会赔付的", 400),
    ))
    breaches = {f.rule_id: f for f in report.violations if f.category == "service"}
    assert set(breaches) == {"service.greeting", "service.first_response", "service.longest_gap",
                             "service.closing_invite"}
    assert breaches["service.first_response"].turn == 1 and "75 s" in breaches["service.first_response"].message
    assert report.metrics.longest_agent_gap_s == 310.0 and report.sections["service"] < 100


def test_bot_failures_without_handover_and_with_handover(pipeline):
    failing = [("customer", "我要改地址"), ("bot", "抱歉，我没有理解您的问题"), ("customer", "改收货地址"),
               ("bot", "您可以换个说法试试"), ("customer", "人工"), ("bot", "抱歉，我还在学习中，暂时无法回答")]
    stuck = pipeline.score(conversation(*failing))
    assert stuck.metrics.bot_failures == 3 and not stuck.metrics.handed_over
    assert "service.handover" in {f.rule_id for f in stuck.violations}
    rescued = pipeline.score(conversation(*failing, ("system", "已为您转接人工客服"),
                                          ("agent", "亲，您好，这边帮您修改地址")))
    assert rescued.metrics.handed_over and rescued.metrics.handover_turn == 6
    assert "service.handover" not in {f.rule_id for f in rescued.violations}


def test_empathy_labels(pipeline):
    missing = pipeline.score(conversation(("customer", "衣服破了个洞，太差了"), ("agent", "您好，可以申请退货")))
    assert missing.empathy == "missing" and "empathy.missing" in {f.rule_id for f in missing.violations}
    late = pipeline.score(conversation(("customer", "衣服破了个洞，太差了"), ("agent", "您好，为您补发一件"),
                                       ("agent", "给您添麻烦了，非常抱歉")))
    assert late.empathy == "late" and late.sections["empathy"] == 60
    calm = pipeline.score(conversation(("customer", "这件有黑色吗"), ("agent", "您好，有的")))
    assert calm.empathy == "not_needed" and calm.sections["empathy"] is None


def test_resolution_labels(pipeline):
    escalated = pipeline.score(conversation(("customer", "我要投诉"), ("agent", "非常抱歉，已为您提交工单，由售后专员联系您")))
    assert escalated.resolution == "escalated"
    unresolved = pipeline.score(conversation(("customer", "怎么还没发货"), ("agent", "抱歉，仓库爆单了"),
                                             ("customer", "算了，我要差评")))
    assert unresolved.resolution == "unresolved"


def test_only_agent_speech_counts(pipeline):
    report = pipeline.score(conversation(("customer", "你们这个是全网最好的吗？能保证明天一定发货吗"),
                                         ("agent", "您好，这款口碑不错，我帮您看下库存")))
    assert [f for f in report.violations if f.category not in ("service", "empathy")] == []


def test_results_carry_versions_and_are_deterministic(pipeline):
    sample = conversation(("customer", "有优惠吗"), ("agent", "亲，这款是全網zui好的，绝对不会褪色，电话13812345678"))
    first = pipeline.score(sample).model_dump_json()
    assert first == pipeline.score(sample).model_dump_json()
    assert first == Pipeline.from_config().score(sample).model_dump_json()
    versions = pipeline.score(sample).versions
    assert versions.scorecard == pipeline.scorecard.id
    assert set(versions.rule_packs) >= {"ad_law", "overpromise", "efficacy", "privacy", "conduct"}
    assert versions.detectors["qa.rules.v1"] and versions.detectors["qa.empathy.lexical.v1"]



def test_an_edited_lexicon_changes_the_recorded_lexicon_version():
    """A cue added without a version bump must still show in the results' provenance (issue #11's rounds
    edited the negation cues under an unchanged declared version)."""
    from importlib import resources

    from qa_engine.lexicons import load_lexicons

    text = resources.files("qa_engine").joinpath("conf/lexicons.yaml").read_text(encoding="utf-8")
    shipped, edited = load_lexicons(text), load_lexicons(text.replace("cues: [不是, ", "cues: [决不, 不是, ", 1))
    assert shipped.version.split("+")[0] == edited.version.split("+")[0]  # same declared version
    assert shipped.version != edited.version
    assert Pipeline.from_config().score(GOOD_SERVICE).versions.lexicons == load_lexicons().version == shipped.version

def test_check_uses_context_for_quotes(pipeline):
    context = [Turn(role=Role.CUSTOMER, text="别家说他们的是全网最好的")]
    assert pipeline.check("您说的“全网最好”我们不敢承诺哦", context=context) == []
    assert pipeline.check("我们家的才是全网最好") != []


def test_label_findings_have_no_span(pipeline):
    report = pipeline.score(GOOD_SERVICE)
    for finding in report.findings:
        if finding.kind is FindingKind.LABEL:
            assert finding.start is None
        elif finding.start is not None:
            assert GOOD_SERVICE.turns[finding.turn].text[finding.start:finding.end] == finding.evidence


def test_the_live_path_judges_the_draft_alone_with_the_same_findings(pipeline):
    """`check` asks turn-scoped detectors for the draft only; on every agent turn of the sample
    month the warnings equal those of scoring the whole conversation up to that turn."""
    from importlib import resources

    from qa_engine.io import load

    sample = resources.files("qa_engine").joinpath("samples/sample_month.jsonl")
    checked = 0
    for record in load(sample):
        if not isinstance(record, Conversation):
            continue
        for index, turn in enumerate(record.turns):
            if turn.role is not Role.AGENT:
                continue
            upto = Conversation(conversation_id=record.conversation_id, turns=record.turns[:index + 1])
            whole = [f for f in pipeline.findings(upto) if f.turn == index and f.kind is FindingKind.VIOLATION
                     and f.category != "empathy"]
            assert pipeline.check(turn.text, context=record.turns[:index],
                                  conversation_id=record.conversation_id) == whole
            checked += bool(whole)
    assert checked > 20  # drafts with warnings, not a vacuous comparison
