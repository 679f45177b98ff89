"""Generated evasion corpus (issue #11): every evasion form of every pack term is still caught by the
rule of that term; innocent look-alikes of the real-text classes are not flagged."""

from __future__ import annotations

from collections import Counter

import pytest

from conftest import conversation
from rules.evasions import evasion_cases


@pytest.fixture(scope="module")
def cases(rule_detector):
    terms = {}
    for rule in rule_detector.rulebook.rules:
        if "agent" in [r.value for r in rule.roles]:
            for term in rule.terms:
                terms.setdefault(term, rule.id)
    return [(form, term, terms[term], text) for form, term, text in evasion_cases(list(terms))]


def test_the_generated_corpus_covers_every_form(cases):
    forms = Counter(form for form, *_ in cases)
    assert {"spaces", "symbols", "emoji between characters", "zero-width", "full-width spaces", "pinyin",
            "traditional", "whole-word pinyin", "homophone", "pinyin initials"} <= set(forms)
    assert len(cases) > 1500


def test_every_evasion_of_every_term_is_caught_by_its_rule_category(rule_detector, cases):
    by_id = {rule.id: rule for rule in rule_detector.rulebook.rules}
    missed = []
    for form, term, rule_id, text in cases:
        found = rule_detector.detect(conversation(("agent", text)))
        if by_id[rule_id].category not in {f.category for f in found}:
            missed.append((form, term, text))
    assert len(missed) / len(cases) <= 0.02, missed[:20]  # disguised-form recall ≥ 98 %


@pytest.mark.parametrize("text", [
    "为了保证配送效率，提交后无法修改", "请您放心，小妹跟您保证会尽快为您审核处理", "具体时间妹子无法向您保证",
    "小店保证不了到货时间", "保证期内免费维修", "面料是100%棉的", "您第一盒用完了吗", "第一款和第二款哪个合适",
    "您是第1次在本店买吗", "已经是最低价了亲", "请设置为最佳分辨率", "祝您财源滚滚", "扫地机滚刷可以单独买",
    "宝贝编号528690173109", "这是唯一的联系方式", "您最好先拍照留证", "我们不能保证明天一定到", "订单号 20261127123456789",
    "那您的问题解决了吗", "请勿把验证码告诉任何人", "最近天气冷，注意保暖", "您可以在订单详情里查看物流",
])
def test_innocent_look_alikes_are_not_flagged(rule_detector, text):
    assert rule_detector.detect(conversation(("agent", text))) == []
