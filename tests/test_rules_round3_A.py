"""Round-3 conduct and efficacy classes stay caught when disguised (issue #11).

The packs' own golden cases pin each class in one wording; agents disguise the same sentence with emoji,
symbols or spaces between the characters, and the patterns (not only the terms) must see through that.
Every violation case of the conduct and efficacy packs is disguised each way and must still fire its
rule; every innocent case, disguised the same way, must stay innocent."""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import conversation
from rules.pack import BUNDLED_PACKS

_CJK_PAIR = re.compile(r"(?<=[\u4e00-\u9fff])(?=[\u4e00-\u9fff])")
DISGUISES = {"emoji": "✨", "symbol": "*", "space": " ", "zero-width": "\u200b"}


def _cases(pack: str) -> list:
    data = yaml.safe_load((BUNDLED_PACKS / f"{pack}.cases.yaml").read_text(encoding="utf-8"))
    return [case for case in data["cases"] if case.get("role", "agent") == "agent" and not case.get("context")]


CASES = [pytest.param(case, name, id=f"{pack}-{number}-{name}")
         for pack in ("conduct", "efficacy") for number, case in enumerate(_cases(pack), start=1) for name in DISGUISES]


@pytest.mark.parametrize(("case", "disguise"), CASES)
def test_a_disguised_case_keeps_its_verdict(rule_detector, case, disguise):
    text = _CJK_PAIR.sub(DISGUISES[disguise], case["text"])
    fired = {f.rule_id for f in rule_detector.detect(conversation(("agent", text)))}
    pack = case["expect"][0].split(".")[0] if case["expect"] else None
    if case["expect"]:
        assert set(case["expect"]) <= fired, f"{text!r}: {case['why']}; fired {sorted(fired)}"
    else:
        mine = {r for r in fired if r.split(".")[0] in ("conduct", "efficacy")}
        assert not mine, f"{text!r}: {case['why']}; fired {sorted(mine)}"
