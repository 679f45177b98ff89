"""The bundled synthetic sample: hand-labelled dialogues against the detectors.

The labels are a careful reader's; the sample is synthetic, so these are behaviour
regression checks, not accuracy claims.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, SAMPLES
from qa_engine.schema import Conversation, Turn

COMPLIANCE = {"ad_law", "overpromise", "efficacy", "privacy", "conduct"}
DIALOGUES = yaml.safe_load((SAMPLES / "synthetic_dialogues.yaml").read_text(encoding="utf-8"))["dialogues"]


def _conversation(dialogue: dict) -> Conversation:
    return Conversation(conversation_id=dialogue["id"],
                        turns=tuple(Turn(role=t["role"], text=t["text"]) for t in dialogue["turns"]))


@pytest.mark.parametrize("dialogue", DIALOGUES, ids=[d["id"] for d in DIALOGUES])
def test_compliance_findings_match_the_hand_labels(pipeline, dialogue):
    report = pipeline.score(_conversation(dialogue))
    found = {f.category for f in report.violations if f.category in COMPLIANCE}
    assert found == set(dialogue["labels"]["violations"]), [(f.rule_id, f.evidence) for f in report.violations]


def test_lexical_baselines_agree_with_hand_labels(pipeline):
    resolution = empathy = 0
    misses = []
    for dialogue in DIALOGUES:
        report = pipeline.score(_conversation(dialogue))
        labels = dialogue["labels"]
        resolution += report.resolution == labels["resolution"]
        empathy += (report.empathy in ("present", "late")) == labels["empathy"]
        if report.resolution != labels["resolution"] or (report.empathy in ("present", "late")) != labels["empathy"]:
            misses.append((dialogue["id"], report.resolution, report.empathy))
    # regression floors for the baselines (the model heads are to beat them on real data)
    assert resolution / len(DIALOGUES) >= 0.95, misses
    assert empathy / len(DIALOGUES) >= 0.9, misses


def test_sample_month_is_reproducible(tmp_path):
    out = tmp_path / "month.jsonl"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_month.py"), "-n", "300", "-o", str(out)],
                   check=True, capture_output=True)
    assert out.read_bytes() == (SAMPLES / "sample_month.jsonl").read_bytes()
