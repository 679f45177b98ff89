"""The turn-violation head (issue #10/#11): conduct and efficacy raised on agent turns no rule hit.

The decision logic runs against a scripted backend (what the head "says" is fixed by markers in the
text), so each rule of the decision is checked exactly; the shipped model's behaviour on real and
hand-written turns is checked in ``test_turn_head_shipped``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, conversation
from models.detectors import HybridViolationDetector, clause_spans
from models.evaluate import raise_threshold
from models.tasks import (HEADS, compliance_line_examples, golden_case_examples, raised_category, turn_examples,
                          turn_violation_label)
from qa_engine.findings import FindingKind, Severity
from rules.detector import make_rule_detector

CONDUCT, EFFICACY = "kkk", "jjj"  # what the scripted head reads as abuse / an efficacy claim (fold keeps them)


class ScriptedArtefact:
    name, provenance = "scripted", "0 sha256:0"

    def __init__(self, heads: tuple[str, ...] = tuple(HEADS)) -> None:
        self.manifest = {"heads": {h: list(HEADS[h]) for h in heads}}

    def threshold(self, head: str) -> float:
        return {"turn_violation": 0.8, "violation_keep": 0.0, "violation_restore": 1.01}.get(head, 0.5)


class ScriptedBackend:
    """Every rule hit stays; the turn head scores 0.9 for a category whose marker the turn holds."""

    row_independent = True

    def __init__(self, artefact: ScriptedArtefact | None = None) -> None:
        self.artefact = artefact or ScriptedArtefact()
        self.calls: list[int] = []

    def logits(self, inputs):
        self.calls.append(len(inputs))
        out = {head: np.zeros((len(inputs), len(labels)), np.float32) for head, labels in HEADS.items()}
        for row, (text, _) in enumerate(inputs):
            out["violation"][row] = (0.0, 5.0)
            conduct, efficacy = (0.9 if CONDUCT in text else 0.04), (0.9 if EFFICACY in text else 0.04)
            out["turn_violation"][row] = np.log(np.array((max(1 - conduct - efficacy, 0.01), conduct, efficacy)))
        return out

    def probabilities(self, head, inputs):
        logits = self.logits(inputs)[head]
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def rules():
    return make_rule_detector()


def test_a_turn_the_head_scores_high_is_raised_with_its_evidence_clause_and_the_lead_rule_citation(rules):
    hybrid = HybridViolationDetector(ScriptedBackend(), rules)
    conv = conversation(("customer", "怎么还没发货"), ("agent", f"亲，仓库那边在打包{CONDUCT}，明天再看看吧"))
    [finding] = hybrid.detect(conv)
    lead = next(r for r in rules.rulebook.rules if r.category == "conduct")
    assert (finding.rule_id, finding.category, finding.kind, finding.turn) == \
           ("conduct.model", "conduct", FindingKind.VIOLATION, 1)
    assert finding.evidence == f"仓库那边在打包{CONDUCT}"  # the clause, not the turn
    assert conv.turns[1].text[finding.start:finding.end] == finding.evidence
    assert (finding.citation, finding.rewrite, finding.severity) == (lead.citation, lead.rewrite, Severity.MAJOR)
    assert finding.match == "model" and finding.confidence == pytest.approx(0.9, abs=0.01)
    note = hybrid.decision_note(finding)
    assert "p(conduct)=0.90" in note and "0.80" in note


def test_nothing_is_raised_on_customer_turns_below_the_threshold_or_where_a_rule_of_the_category_counted(rules):
    hybrid = HybridViolationDetector(ScriptedBackend(), rules)
    conv = conversation(("customer", f"你们客服都是傻子{CONDUCT}"), ("agent", "您好，请问有什么可以帮您"),
                        ("agent", f"你是不是傻{CONDUCT}"), ("agent", f"这款面霜能根治湿疹{EFFICACY}"))
    found = hybrid.detect(conv)
    assert not [f for f in found if f.turn in (0, 1)]
    assert [f.rule_id for f in found if f.turn == 2] == ["conduct.abusive"]        # the rule's finding, no duplicate
    assert [f.rule_id for f in found if f.turn == 3] == ["efficacy.disease_treatment"]


def test_the_likelier_category_is_raised_and_an_artefact_without_the_head_raises_nothing(rules):
    conv = conversation(("customer", "这个茶有什么用"), ("agent", f"喝一个月身体就好了{EFFICACY}"))
    assert [f.rule_id for f in HybridViolationDetector(ScriptedBackend(), rules).detect(conv)] == ["efficacy.model"]
    old = ScriptedArtefact(heads=("empathy", "emotion", "violation", "resolution"))
    assert HybridViolationDetector(ScriptedBackend(old), rules).detect(conv) == []


def test_raised_findings_of_a_batch_equal_those_of_each_conversation_alone(rules):
    hybrid = HybridViolationDetector(ScriptedBackend(), rules)
    batch = [conversation(("customer", "在吗"), ("agent", f"第{i}次了，烦不烦{CONDUCT}。" if i % 2 else "在的亲"))
             for i in range(6)]
    assert hybrid.detect_many(batch) == [hybrid.detect(c) for c in batch]


def test_the_live_path_judges_the_draft_alone_as_the_whole_conversation_judges_it(rules):
    backend = ScriptedBackend()
    hybrid = HybridViolationDetector(backend, rules)
    conv = conversation(("customer", "在吗"), ("agent", f"等着吧，{CONDUCT}别催"), ("customer", "你们是不是全网最好的"),
                        ("agent", f"多喝{EFFICACY}，身体就好"), ("agent", "这款是全网最好的，你是不是傻"))
    whole = hybrid.detect(conv)
    for index in range(len(conv.turns)):
        assert hybrid.detect_turn(conv, index) == [f for f in whole if f.turn == index]
    backend.calls.clear()
    hybrid.detect_turn(conv, 1)
    assert backend.calls == [1, 2]  # the draft's turn pass and its two clauses: not the whole conversation


def test_the_evidence_pass_is_one_model_call_for_every_flagged_turn(rules):
    backend = ScriptedBackend()
    hybrid = HybridViolationDetector(backend, rules)
    batch = [conversation(("customer", "在吗"), ("agent", f"等着吧，{CONDUCT}别催"), ("agent", f"多喝{EFFICACY}，身体就好"))
             for _ in range(3)]
    found = hybrid.detect_many(batch)
    assert [[f.evidence for f in fs] for fs in found] == [[f"{CONDUCT}别催", f"多喝{EFFICACY}"]] * 3
    assert len(backend.calls) == 2  # the turn pass, then all six turns' clauses at once


@pytest.mark.parametrize("text, spans", [
    ("没问题", [(0, 3)]),
    ("好的。", [(0, 3)]),                           # one clause: the whole turn, its punctuation included
    ("好的，亲。", [(0, 2), (3, 4)]),
    ("亲，这个真不行！您再看看", [(0, 1), (2, 7), (8, 12)]),
    ("，，开头就断\n第二行", [(2, 6), (7, 10)]),
    ("屏幕3.5寸，刚好. 不大", [(0, 6), (7, 9), (11, 13)]),   # a decimal point is no clause break
])
def test_clause_spans(text, spans):
    assert clause_spans(text) == spans


def test_raised_category_takes_the_likelier_of_conduct_and_efficacy_at_the_threshold():
    assert raised_category((0.1, 0.85, 0.05), 0.8) == "conduct"
    assert raised_category((0.1, 0.05, 0.85), 0.8) == "efficacy"
    assert raised_category((0.3, 0.4, 0.3), 0.5) is None
    assert raised_category((0.2, 0.8, 0.0), 0.8) == "conduct"


def test_raise_threshold_keeps_clean_dev_turns_within_one_in_a_thousand():
    rng = np.random.default_rng(0)
    clean = rng.dirichlet((8, 1, 1), size=2500)
    probs = np.vstack([clean, [[0.02, 0.97, 0.01]] * 20])
    labels = np.array([0] * 2500 + [1] * 20)
    threshold = raise_threshold(probs, labels)
    raised = probs[labels == 0, 1:].max(axis=1) >= threshold
    assert threshold >= 0.5 and raised.sum() <= 2 and (probs[labels == 1, 1] >= threshold).all()
    assert raise_threshold(np.array([[0.9, 0.05, 0.05]] * 10), np.zeros(10, int)) == 0.5  # floor


def test_raise_threshold_rises_until_what_it_raises_on_the_tuning_lines_is_precise():
    dev = np.array([[0.9, 0.05, 0.05]] * 100)
    tune_probs = np.array([[0.3, 0.7, 0.0], [0.1, 0.85, 0.05], [0.0, 0.95, 0.05], [0.05, 0.0, 0.95]])
    right = [set(), {"conduct"}, {"conduct"}, {"efficacy"}]
    assert raise_threshold(dev, np.zeros(100, int), (tune_probs, right)) == 0.85   # above the innocent line's 0.7
    wrong = [set(), {"efficacy"}, {"conduct"}, {"efficacy"}]                        # 0.85 raises the wrong category
    assert raise_threshold(dev, np.zeros(100, int), (tune_probs, wrong)) == 0.95
    assert raise_threshold(dev, np.zeros(100, int), (tune_probs[:1], [set()])) == 1.01   # nothing it raises is right


def test_turn_labels_training_examples_and_the_blind_lines_dev_split_only(rules):
    assert turn_violation_label([]) == 0 and turn_violation_label(["ad_law"]) == 0
    assert turn_violation_label(["privacy", "conduct"]) == 1 and turn_violation_label(["efficacy"]) == 2
    rows = [{"id": "a#1", "role": "agent", "text": "你烦不烦", "context": "在吗", "empathy": False, "compliance": ["conduct"]},
            {"id": "c#0", "role": "customer", "text": "在吗", "emotion": "neutral"}]
    assert [(e.head, e.label) for e in turn_examples(rows)] == [("empathy", 0), ("turn_violation", 1), ("emotion", 1)]
    lines = [json.loads(line) for line in (ROOT / "benchmarks" / "data" / "compliance_lines_round3.jsonl")
             .read_text(encoding="utf-8").splitlines()]
    examples = compliance_line_examples(lines)
    test_ids = {line["id"] for line in lines if line["split"] == "test"}
    assert {e.head for e in examples} == {"turn_violation"} and not {e.source for e in examples} & test_ids
    turns = {e.source: e.label for e in examples}
    assert len(turns) == sum(line["split"] == "dev" for line in lines)
    assert {turns[line["id"]] for line in lines if line["split"] == "dev" and "conduct" in line["categories"]} == {1}
    cases = golden_case_examples(rules, [ROOT / "rules" / "packs" / "efficacy.cases.yaml"])
    labels = [e.label for e in cases if e.head == "turn_violation"]
    assert set(labels) == {0, 2} and len(labels) >= 200


# --- the shipped model on hand-written and real turns --------------------------------------------

# Written for this test (not in any training or tuning file), each checked against the packs: no rule
# of the category hits them, so whatever is found here is the turn head's own work.
UNCOVERED = [
    ("conduct", "你们这服务太差了", "嫌差可以去别家，又没人拦着您"),
    ("conduct", "说明书看不懂", "说明书写得清清楚楚，小学生都能看懂"),
    ("conduct", "怎么这么久才回复", "我又不是只服务您一个人，排队等着"),
    ("conduct", "我都问了三遍了", "问多少遍答案都一样，您记性不太好的话可以截个图"),
    ("efficacy", "这款枕头怎么样", "睡上一个礼拜，颈椎的毛病就没了，失眠的人睡得特别香"),
    ("efficacy", "这个蜂蜜有什么用", "老人家每天一勺，咳嗽痰多的毛病慢慢就好了"),
    ("efficacy", "这个泡脚粉效果咋样", "泡一个月手脚冰凉就改善了，宫寒的姐妹用了都说好"),
    ("efficacy", "这个洗发水怎么样", "坚持用两瓶，头顶稀疏的地方都能重新长出来"),
]
UNCOVERED_CONVERSATIONS = [conversation(("customer", "在吗"), ("agent", "在的亲"), ("customer", context), ("agent", text),
                                        cid=f"uncovered-{n}") for n, (_, context, text) in enumerate(UNCOVERED)]
INNOCENT = [
    ("这个蜂蜜有什么用", "这款是百花蜜，可以冲水喝，也可以抹面包，口感比较甜"),
    ("我要投诉你", "非常抱歉给您带来不好的体验，您的问题我已经记录，马上帮您处理"),
    ("怎么这么久才回复", "抱歉亲，刚才咨询量比较大，让您久等了，现在帮您看一下"),
    ("这衣服洗一次就缩水了", "很抱歉亲，纯棉材质建议冷水手洗，您这边可以申请售后，我帮您处理"),
    ("说明书看不懂", "没关系的亲，我给您发一个安装视频，跟着一步步操作就可以"),
    ("这个枕头睡着舒服吗", "这款是记忆棉的，回弹慢，侧睡仰睡都可以，具体感受因人而异哦"),
]


@pytest.fixture(scope="module")
def shipped_hybrid():
    pytest.importorskip("onnxruntime", reason="needs the train extra (onnxruntime)")
    from models.detectors import make_hybrid_violation

    hybrid = make_hybrid_violation()
    assert isinstance(hybrid, HybridViolationDetector) and hybrid.raises  # the shipped model has the turn head
    return hybrid


def test_the_shipped_turn_head_finds_abuse_and_efficacy_claims_no_pack_covers(shipped_hybrid, rules):
    found = []
    for category, context, text in UNCOVERED:
        conv = conversation(("customer", context), ("agent", text))
        assert category not in {f.category for f in rules.detect(conv)}  # the packs miss every one of them
        raised = [f for f in shipped_hybrid.detect(conv) if f.category == category and f.rule_id == f"{category}.model"]
        assert all(f.evidence and f.evidence in text and f.citation and f.rewrite for f in raised)
        found.append(bool(raised))
    assert sum(found) >= 6, found
    false = [text for context, text in INNOCENT if shipped_hybrid.detect(conversation(("customer", context), ("agent", text)))]
    assert len(false) <= 1, false


def test_the_shipped_turn_head_raises_almost_nothing_on_real_clean_agent_turns(shipped_hybrid):
    """Real JD.com / Taobao agent turns of the test split (never trained on, never used for thresholds):
    what the head raises on turns labelled clean stays within its share of the ≤ 3 per 1,000 target."""
    corpora = ROOT.parent / "shared" / "corpora"
    if not (corpora / "jddc_uss_usda").exists():
        pytest.skip("../shared/corpora is absent")
    from models.annotation import split_of, turn_id
    from models.corpus import conversations
    from models.labels import REAL_DIR
    from qa_engine.schema import Role

    labels = {row["id"]: row for row in map(json.loads, (REAL_DIR / "agent_turns.jsonl").read_text(encoding="utf-8").splitlines())}
    test = [c for c in conversations(corpora) if split_of(c.conversation_id) == "test"]
    raised = [(turn_id(c.conversation_id, f.turn), f.category) for c, found in zip(test, shipped_hybrid.detect_many(test))
              for f in found if f.match == "model"]
    agent_turns = sum(t.role is Role.AGENT for c in test for t in c.turns)
    false = [(tid, category) for tid, category in raised if category not in labels[tid]["compliance"]]
    assert agent_turns > 1000 and 1000 * len(false) / agent_turns <= 1.0, false


def test_the_shipped_live_path_equals_the_whole_conversation_on_real_conversations(shipped_hybrid):
    corpora = ROOT.parent / "shared" / "corpora"
    if not (corpora / "jddc_uss_usda").exists():
        pytest.skip("../shared/corpora is absent")
    from models.corpus import conversations

    items = [c for c in conversations(corpora) if c.channel == "jd"][:15] + UNCOVERED_CONVERSATIONS
    for conv in items:
        whole = shipped_hybrid.detect(conv)
        assert [f for i in range(len(conv.turns)) for f in shipped_hybrid.detect_turn(conv, i)] == \
               sorted(whole, key=lambda f: f.turn)


def test_check_explain_shows_a_model_raised_finding_with_its_probability_and_threshold(shipped_hybrid):
    """`qa-engine check --explain` with the models configuration: evidence, citation, rewrite and the decision."""
    exe = shutil.which("qa-engine") or str(Path(sys.executable).with_name("qa-engine"))
    env = {"COLUMNS": "250", "PATH": str(Path(sys.executable).parent), "LANG": "C.UTF-8",
           **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {})}
    text = "嫌差可以去别家，又没人拦着您"
    result = subprocess.run([exe, "check", text, "--json", "--config", str(ROOT / "qa_engine" / "conf" / "models.yaml")],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    [finding] = json.loads(result.stdout)["findings"]
    assert finding["rule_id"] == "conduct.model" and text[finding["start"]:finding["end"]] == finding["evidence"]
    assert finding["citation"] and finding["rewrite"] and finding["confidence"] >= shipped_hybrid.artefact.threshold("turn_violation")
    explained = subprocess.run([exe, "check", text, "--explain", "--config", str(ROOT / "qa_engine" / "conf" / "models.yaml")],
                               capture_output=True, text=True, timeout=300, env=env).stdout
    assert "conduct.model" in explained and "raised by the model: p(conduct)=" in explained


def test_the_blind_line_files_are_consistent_and_no_test_line_is_trained_on():
    """Every file of ``benchmarks/data/compliance_lines*.jsonl``: the labelling contract of the authoring
    prompt, unique ids, and no test-split text among the lines the turn head trains or tunes on."""
    from models.config import LINES_GLOB
    from models.labels import load_compliance_lines

    lines = load_compliance_lines(sorted(LINES_GLOB.parent.glob(LINES_GLOB.name)))
    assert len(lines) >= 1697 and len({line["id"] for line in lines}) == len(lines)
    categories = {"ad_law", "overpromise", "efficacy", "privacy", "conduct"}
    for line in lines:
        assert line["split"] in ("dev", "tune", "test") and line["text"].strip(), line["id"]
        assert set(line["categories"]) <= categories, line["id"]
        assert line["violation"] == bool(line["categories"]) == (line["form"] in ("plain", "disguised")), line["id"]
    seen = {line["text"] for line in lines if line["split"] in ("dev", "tune")}
    assert not [line["id"] for line in lines if line["split"] == "test" and line["text"] in seen]
    assert {line["split"] for line in lines if line["id"].startswith("cl5")} == {"tune", "test"}  # round 5: never trained on
