"""Rule packs as data: validation errors, reload, adding a term without code."""

from __future__ import annotations

import shutil

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import conversation
from qa_engine.errors import RulePackError
from rules.detector import _SEVERITY_RANK, _longest_per_category, make_rule_detector
from rules.matcher import Match
from rules.pack import BUNDLED_PACKS, load_rulebook, pack_files, parse_pack

PACK = """
pack: demo
version: "1"
category: ad_law
defaults: {severity: major, citation: "广告法第九条"}
rules:
  - id: demo.rule
    description: demo
    terms: [宇宙第一]
    rewrite: 口碑很好
"""


def _edit(text: str, pack: dict | None = None, **changes) -> str:
    data = yaml.safe_load(text)
    data["rules"][0].update(changes)
    data.update(pack or {})
    return yaml.safe_dump(data, allow_unicode=True)


# fmt: off
@pytest.mark.parametrize(("text", "code", "needle"), [
    ("pack: demo\nrules: [", "E011", "not valid YAML"),
    ("- just a list", "E011", "mapping"),
    ("pack: demo\nversion: '1'\ncategory: x\nrules: []", "E011", "non-empty"),
    ("pack: demo\nversion: '1'\nrules: [{id: demo.a}]", "E011", "missing 'category'"),
    (_edit(PACK, pack={"category": "Ad Law"}), "E011", "category"),
    (_edit(PACK, severity="fatal"), "E010", "severity"),
    (_edit(PACK, terms=[], regexes=[]), "E010", "at least one term"),
    (_edit(PACK, regexes=[{"pattern": "最(好"}]), "E010", "does not compile"),
    (_edit(PACK, regexes=[{"pattern": "\\d+", "validator": "crc32"}]), "E010", "unknown validator"),
    (_edit(PACK, exceptions=[{"reason": "no phrase"}]), "E010", "exactly one of"),
    (_edit(PACK, id="other.rule"), "E010", "must start with 'demo.'"),
    (_edit(PACK, colour="red"), "E010", "colour"),
    (_edit(PACK, category="tax"), "E010", "differs from the pack's category"),
    (_edit(PACK, pack={"category": "privacy"}), "E010", "needs a 'mask' spec"),
    (_edit(PACK, mask={"keep_head": -1}), "E010", "keep_head"),
    (_edit(PACK, mask={"keep_through": "(区"}), "E010", "keep_through regex"),
])
# fmt: on
def test_malformed_packs_are_refused_with_file_rule_and_reason(text, code, needle):
    with pytest.raises(RulePackError) as error:
        parse_pack(text, "packs/demo.yaml")
    message = str(error.value)
    assert message.startswith(code) and needle in message and "packs/demo.yaml" in message
    if code == "E010":
        assert "rule" in message


def test_duplicate_rule_ids_across_packs(tmp_path):
    for folder in ("team_a", "team_b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "demo.yaml").write_text(PACK, encoding="utf-8")
    with pytest.raises(RulePackError, match=r"E012: duplicate rule id demo.rule in .*team_b"):
        load_rulebook([tmp_path / "team_a", tmp_path / "team_b"])


def test_adding_a_term_is_a_data_change_and_reload_swaps_packs(tmp_path):
    for path in pack_files(BUNDLED_PACKS):
        shutil.copy(path, tmp_path / path.name)
    detector = make_rule_detector([str(tmp_path)])
    sample = conversation(("agent", "这款是宇宙无敌款"))
    assert detector.detect(sample) == []
    before = detector.data_versions()["ad_law"]

    pack = tmp_path / "ad_law.yaml"
    data = yaml.safe_load(pack.read_text(encoding="utf-8"))
    data["rules"][0]["terms"].append("宇宙无敌")
    pack.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    detector.reload()
    (finding,) = detector.detect(sample)
    assert finding.evidence == "宇宙无敌" and finding.rule_id == data["rules"][0]["id"]
    assert detector.data_versions()["ad_law"] != before  # the content hash is part of the version

    pack.write_text("pack: ad_law\nversion: broken\ncategory: ad_law\nrules: [{id: ad_law.x}]\n", encoding="utf-8")
    with pytest.raises(RulePackError, match="ad_law.x"):
        detector.reload()
    assert [f.evidence for f in detector.detect(sample)] == ["宇宙无敌"]  # old packs still in force


def test_explain_gives_every_suppression_reason(rule_detector):
    sample = conversation(("customer", "听说你们是全网最好的"),
                          ("agent", "您说的“全网最好”我们不敢说，这款不是最好的，但您第一次买可以试试"))
    reasons = {f.evidence: f.suppressed_by for f in rule_detector.explain(sample) if f.turn == 1}
    assert reasons["全网最好"].startswith("quote")
    assert any(r.startswith("negation") for e, r in reasons.items() if e == "最好")
    assert reasons["第一"].startswith("exception")
    assert rule_detector.detect(sample) == []
    customer = [f for f in rule_detector.explain(sample) if f.turn == 0]
    scoped = conversation(("agent", "我们不能说自己是第一，最好先看看评价；请您保证手机畅通"))
    reasons = {f.evidence: f.suppressed_by for f in rule_detector.explain(scoped)}
    assert reasons["第一"] == "negation: in the scope of '不能说' earlier in the clause"
    assert reasons["最好"].startswith("exception: advisory") and reasons["保证"].startswith("exception: a request")
    assert rule_detector.detect(scoped) == []
    assert customer and all(f.suppressed_by.startswith("role") for f in customer)


NEW_CATEGORY_PACK = """
pack: gambling
version: "1"
category: gambling
defaults: {severity: critical, citation: "《中华人民共和国广告法》第九条"}
rules:
  - id: gambling.odds
    description: "Betting offered to customers"
    terms: [押注, 下注赢]
    rewrite: 本店不提供任何博彩活动
"""


def test_a_new_category_is_one_pack_file_and_the_scorecard_must_score_it(tmp_path):
    from qa_engine.errors import ScorecardError
    from qa_engine.pipeline import Pipeline
    from qa_engine.scorecard import load_scorecard
    from rules.detector import RuleDetector

    for path in pack_files(BUNDLED_PACKS):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "gambling.yaml").write_text(NEW_CATEGORY_PACK, encoding="utf-8")
    detector = make_rule_detector([str(tmp_path)])
    assert "gambling" in detector.categories
    with pytest.raises(ScorecardError, match=r"E021: .*'gambling'.*qa.rules.v1"):
        Pipeline([detector])
    card = yaml.safe_load((BUNDLED_PACKS.parents[1] / "qa_engine" / "conf" / "scorecard.yaml").read_text(encoding="utf-8"))
    card["sections"]["compliance"]["categories"].append("gambling")
    pipeline = Pipeline([detector], load_scorecard(yaml.safe_dump(card, allow_unicode=True)))
    report = pipeline.score(conversation(("agent", "今晚押注就送券")))
    assert [f.rule_id for f in report.violations if f.category == "gambling"] == ["gambling.odds"]
    assert report.auto_fail_reasons == ["gambling.odds (critical)"] and not report.passed

    # a reload that brings a category the scorecard does not score is refused; the old packs serve on
    default = Pipeline([RuleDetector(load_rulebook([p for p in pack_files(tmp_path) if p.name != "gambling.yaml"]),
                                     sources=[tmp_path])])
    with pytest.raises(ScorecardError, match="gambling"):
        default.reload()
    assert "gambling" not in default.detectors[0].categories


def _longest_per_category_by_scan(matches):
    """The reference: each hit against every hit kept so far."""
    ordered = sorted(matches, key=lambda m: (-(m.end - m.start), _SEVERITY_RANK[m.payload.severity], m.start, m.payload.id))
    kept = []
    for match in ordered:
        if not any(k.payload.category == match.payload.category and k.start < match.end and match.start < k.end
                   for k in kept):
            kept.append(match)
    return sorted(kept, key=lambda m: (m.start, m.end, m.payload.id))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(1, 12), st.integers(0, 7)), max_size=40))
def test_overlapping_hits_keep_the_longest_per_category_as_a_scan_of_every_kept_hit_would(spans):
    """`_longest_per_category` finds overlaps by bisection among the category's kept hits; it must keep
    exactly what comparing each hit with every kept hit keeps (rules of two categories and severities)."""
    by_category = {}
    for rule in load_rulebook().rules:
        by_category.setdefault(rule.category, [])
        if rule.severity not in {r.severity for r in by_category[rule.category]}:
            by_category[rule.category].append(rule)
    rules = [rule for category in sorted(by_category)[:2] for rule in by_category[category][:2]]
    matches = [Match(rules[r % len(rules)], start, start + length, "regex") for start, length, r in spans]
    assert _longest_per_category(matches) == _longest_per_category_by_scan(matches)
