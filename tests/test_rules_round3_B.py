"""Generated spellings of the regex-only classes of issue #11 (round 3): the term matcher folds pinyin and
homophones of pack *terms*, but a certainty word inside a delivery regex or a credential inside a request
regex is matched by the pack's own alternation — every spelling of it must still be caught, in either
order and with any date or verb, and its negated or warning forms must stay innocent."""

from __future__ import annotations

from itertools import product

import pytest

from conftest import conversation

# every character of a certainty word typed as itself or as its pinyin (yi定, 肯ding, baozheng), and 一
# typed as a same-sounding character (亿定, 一腚)
CERTAINTY = {"一定": [("一", "yi", "亿"), ("定", "ding")], "肯定": [("肯", "ken"), ("定", "ding")],
             "保证": [("保", "bao"), ("证", "zheng")], "绝对": [("绝", "jue"), ("对", "dui")],
             "必定": [("必", "bi"), ("定", "ding")], "铁定": [("铁", "tie"), ("定", "ding")]}
DATES = ["明天", "后天", "周五", "3号", "两天内"]
VERBS = ["到", "发出", "送到", "到账"]


def _spellings(parts: list[tuple[str, ...]]) -> list[str]:
    return ["".join(chars) for chars in product(*parts)]


def _found(rule_detector, text: str) -> set[str]:
    return {f.category for f in rule_detector.detect(conversation(("agent", text)))}


def test_every_spelling_of_a_certainty_word_with_a_date_is_a_delivery_promise(rule_detector):
    missed = [text for word, parts in CERTAINTY.items() for spelled in _spellings(parts)
              for date, verb in zip(DATES, VERBS * 2)
              for text in (f"亲，{date}{spelled}{verb}", f"放心，{spelled}{date}{verb}")
              if "overpromise" not in _found(rule_detector, text)]
    assert missed == []


def test_a_refused_certainty_word_in_any_spelling_is_no_promise(rule_detector):
    flagged = [text for parts in CERTAINTY.values() for spelled in _spellings(parts)
               for text in (f"这个没法{spelled}明天到哦", f"我们不能{spelled}后天发出")
               if "overpromise" in _found(rule_detector, text)]
    assert flagged == []


CREDENTIALS = _spellings([("验", "yan"), ("证", "zheng"), ("码", "ma")]) + _spellings([("密", "mi"), ("码", "ma")])


@pytest.mark.parametrize("template", ["把{}发我一下", "您的{}是多少", "麻烦告诉我一下{}", "登录{}报给我"])
def test_every_spelling_of_a_credential_request_is_caught(rule_detector, template):
    missed = [text for word in CREDENTIALS if "privacy" not in _found(rule_detector, text := "亲，" + template.format(word))]
    assert missed == []


@pytest.mark.parametrize("template", ["请勿把{}告诉任何人", "{}不用发给我，您自己输入就行", "客服绝对不会索要{}"])
def test_warnings_about_a_credential_in_any_spelling_are_innocent(rule_detector, template):
    flagged = [text for word in CREDENTIALS if _found(rule_detector, text := template.format(word))]
    assert flagged == []


@pytest.mark.parametrize(("modifier", "material"), list(product(["", "精梳", "新西兰进口", "有机"], ["棉", "羊毛", "蚕丝", "橙汁", "蜂蜜"])))
def test_100_percent_of_a_material_is_a_label_not_a_promise(rule_detector, modifier, material):
    assert "overpromise" not in _found(rule_detector, f"面料用的100%{modifier}{material}")


@pytest.mark.parametrize("claim", ["正品", "有效", "满意", "不会过敏"])
def test_100_percent_of_a_promise_is_still_flagged(rule_detector, claim):
    assert "overpromise" in _found(rule_detector, f"这款100%{claim}")


def test_a_long_turn_searches_each_exception_once_not_once_a_hit(rule_detector, monkeypatch):
    """A 60 KB live draft repeating one promise (1,000+ hits) must not search the turn for every
    exception of every hit again: that made the rule path quadratic (30 s for the draft)."""
    import re

    calls = []
    finditer = re.finditer
    monkeypatch.setattr(re, "finditer", lambda pattern, text, *a: calls.append(pattern) or finditer(pattern, text, *a))
    text = "亲，明天一定发货，保证不了具体几点。" * 300
    found = rule_detector.detect(conversation(("agent", text)))
    exceptions = {id(e) for rule in rule_detector.rulebook.rules for e in rule.exceptions if e.pattern}
    assert len(found) >= 300 and len(calls) <= len(exceptions)
