"""Golden cases: every ``rules/packs/<pack>.cases.yaml`` case, run through the rule detector."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from qa_engine.schema import Conversation, Turn
from rules.pack import BUNDLED_PACKS, pack_files

CASE_FILES = sorted(BUNDLED_PACKS.glob("*.cases.yaml"))


def _cases() -> list:
    params = []
    for path in CASE_FILES:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for number, case in enumerate(data["cases"], start=1):
            params.append(pytest.param(data["pack"], case, id=f"{data['pack']}-{number}"))
    return params


def test_every_pack_has_cases():
    assert {p.stem for p in pack_files(BUNDLED_PACKS)} == {Path(p.stem).stem for p in CASE_FILES}


@pytest.mark.parametrize(("pack", "case"), _cases())
def test_case(rule_detector, pack, case):
    turns = [Turn(role=t["role"], text=t["text"]) for t in case.get("context", [])]
    turns.append(Turn(role=case.get("role", "agent"), text=case["text"]))
    conversation = Conversation(conversation_id="case", turns=tuple(turns))
    last = len(turns) - 1
    found = rule_detector.detect(conversation)
    fired = {f.rule_id for f in found if f.turn == last and f.rule_id.startswith(f"{pack}.")}
    assert fired == set(case["expect"]), f"{case['text']!r}: {case.get('why', '')}; explain: " + "; ".join(
        f"{f.rule_id} {f.evidence!r} {f.suppressed_by}" for f in rule_detector.explain(conversation) if f.turn == last)
    for finding in found:  # every span points at the original characters
        assert turns[finding.turn].text[finding.start:finding.end] == finding.evidence
