"""Real corpora in (issue #10): the converter through the strict loader, the label files by reference,
splits by conversation, agreement. Corpus tests skip where ``../shared/corpora`` is absent."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT
from models.annotation import agreement, deal, kappa, merge, split_of
from models.corpus import corpus_record, load_dialogues
from qa_engine.io import Quarantined
from qa_engine.schema import Conversation, Role

CORPORA = ROOT.parent / "shared" / "corpora"
needs_corpora = pytest.mark.skipif(not (CORPORA / "jddc_uss_usda").exists(), reason="../shared/corpora is absent")


def _raw_rows(relative: str) -> list[dict]:
    return [json.loads(line) for line in (CORPORA / relative).read_text(encoding="utf-8").splitlines() if line.strip()]


@needs_corpora
def test_converter_turns_every_corpus_row_into_a_valid_conversation():
    loaded = list(load_dialogues(CORPORA))
    assert not [item for item in loaded if isinstance(item, Quarantined)]
    jddc = [c for c in loaded if c.channel == "jd"]
    ecd = [c for c in loaded if c.channel == "taobao"]
    assert (len(jddc), len(ecd)) == (560, 177)  # SOURCES.md counts
    assert sum(len(c.turns) for c in jddc) == 15026 and sum(len(c.turns) for c in ecd) == 1484
    raw = _raw_rows("jddc_uss_usda/jddc_uss_usda.jsonl")[0]
    first = jddc[0]
    assert first.conversation_id == raw["conversation_id"]
    assert [(t.role.value, t.text) for t in first.turns] == [(t["role"], t["text"]) for t in raw["turns"]]
    satisfaction = first.metadata["satisfaction"]
    assert len(satisfaction) == len(first.turns)
    assert all(s is None for s, t in zip(satisfaction, first.turns) if t.role is Role.AGENT)
    assert first.metadata["overall_satisfaction"] == raw["overall_satisfaction_3class"]
    assert all(c.metadata.get("roles_inferred") for c in ecd)


def test_a_malformed_corpus_row_is_quarantined_with_its_row_and_reason(tmp_path):
    path = tmp_path / "rows.jsonl"
    good = {"conversation_id": "c1", "turns": [{"role": "customer", "text": "在吗"}, {"role": "agent", "text": "在的"}]}
    rows = [good, {"conversation_id": "c2"}, {"conversation_id": "c3", "turns": [{"role": "robot", "text": "x"}]}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + "{broken\n", encoding="utf-8")
    from qa_engine.io import load_jsonl

    loaded = list(load_jsonl(path, adapt=lambda row: corpus_record(row, "jd")))
    assert isinstance(loaded[0], Conversation) and loaded[0].channel == "jd"
    codes = [(q.row, q.code) for q in loaded[1:]]
    assert codes == [(2, "E003"), (3, "E004"), (4, "E001")]
    assert "not a corpus row" in loaded[1].reason and "turns" in loaded[1].reason


@needs_corpora
def test_label_files_join_the_corpora_by_reference_and_hold_no_corpus_text():
    from models.labels import REAL_DIR, load_real_dataset

    data = load_real_dataset(CORPORA)
    agent = [u for u in data.utterances if u["role"] == "agent"]
    customer = [u for u in data.utterances if u["role"] == "customer"]
    assert len(agent) >= 3000 and len(data.conversations) >= 700
    assert all(u["split"] == split_of(u["conversation_id"]) for u in data.utterances)
    assert {u["emotion"] for u in customer} == {"negative", "neutral", "positive"}
    labelled = (REAL_DIR / "agent_turns.jsonl").read_text(encoding="utf-8")
    assert set(json.loads(labelled.splitlines()[0])) <= {"id", "empathy", "compliance", "annotators", "adjudicated"}
    sample_texts = [u["text"] for u in agent if len(u["text"]) > 12][:200]
    assert not any(text in labelled for text in sample_texts)


@needs_corpora
def test_every_agent_turn_a_rule_hits_is_labelled():
    from models.annotation import turn_id
    from models.corpus import conversations
    from models.labels import REAL_DIR
    from rules.detector import make_rule_detector

    labelled = {json.loads(line)["id"] for line in (REAL_DIR / "agent_turns.jsonl").read_text(encoding="utf-8").splitlines()}
    rules = make_rule_detector()
    hit = {turn_id(c.conversation_id, f.turn) for c in conversations(CORPORA) for f in rules.detect(c)
           if f.turn is not None and c.turns[f.turn].role is Role.AGENT}
    assert hit and hit <= labelled


def test_splits_are_by_conversation_and_stable():
    assert split_of("jddc_usda_valid_badddf810a11") == split_of("jddc_usda_valid_badddf810a11")
    shares = [split_of(f"c{i}") for i in range(5000)]
    assert 0.17 < shares.count("test") / 5000 < 0.23 and 0.12 < shares.count("dev") / 5000 < 0.18


def test_overlap_is_dealt_to_two_annotators_and_kappa_is_cohens():
    ids = [f"u{i}" for i in range(100)]
    shares = deal(ids, 4, 20, "seed:")
    seen = [i for share in shares for i in share]
    assert set(seen) == set(ids) and len(seen) == 120 and max(seen.count(i) for i in ids) == 2
    assert kappa([1, 1, 0, 0], [1, 1, 0, 0]) == 1.0
    assert kappa([1, 0, 1, 0], [0, 1, 0, 1]) == -1.0
    assert abs(kappa([1, 1, 1, 0, 0, 0, 1, 0], [1, 1, 0, 0, 0, 1, 1, 0]) - 0.5) < 1e-9


def test_disagreements_need_an_adjudication():
    by_id = {"a": [{"empathy": True, "annotator": "x"}, {"empathy": False, "annotator": "y"}],
             "b": [{"empathy": False, "annotator": "x"}]}
    with pytest.raises(ValueError, match="no adjudication"):
        merge(by_id, ("empathy",), {})
    rows = merge(by_id, ("empathy",), {"a": {"empathy": True, "why": "apology for the wait"}})
    assert rows[0] == {"id": "a", "empathy": True, "annotators": ["x", "y"], "adjudicated": "apology for the wait"}
    assert agreement(by_id, {"empathy": lambda r: r["empathy"]})["empathy"]["disagreements"] == 1


def test_a_teams_own_transcripts_are_a_corpus_too(tmp_path):
    from models.corpus import conversations, real_texts

    rows = [{"conversation_id": "own-1", "turns": [{"role": "customer", "text": "还没到"},
                                                  {"role": "agent", "text": "抱歉让您久等了"}],
             "metadata": {"satisfaction": [0, None], "overall_satisfaction": 1}},
            {"conversation_id": "own-2", "turns": [{"role": "customer", "text": "好的"}]}]
    path = tmp_path / "month.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    loaded = conversations(tmp_path)
    assert [c.conversation_id for c in loaded] == ["own-1", "own-2"]
    assert loaded[0].metadata["satisfaction"] == [0, None]
    assert real_texts(path) == ["还没到", "抱歉让您久等了", "好的"]
    with pytest.raises(FileNotFoundError, match="no dialogues"):
        list(load_dialogues(tmp_path / "empty"))


@needs_corpora
def test_batched_matching_equals_one_conversation_at_a_time_on_every_real_conversation(pipeline):
    """The batch paths (score, batch job) match many conversations' turns in one pass; a
    conversation's findings and score never depend on what it was batched with."""
    from models.corpus import conversations

    real = conversations(CORPORA)
    rules = next(d for d in pipeline.detectors if d.name == "qa.rules.v1")
    alone = [rules.detect(c) for c in real]
    assert sum(map(len, alone)) > 20  # real hits (35 on the corpora today), not a vacuous comparison
    assert rules.detect_many(real) == alone
    sample = real[::7]
    assert [r.model_dump() for r in pipeline.score_many(sample, batch_size=16)] == \
        [pipeline.score(c).model_dump() for c in sample]


@needs_corpora
def test_the_regex_prescreen_never_drops_a_match_on_real_turns():
    """Regexes run only on texts holding a character of each set their pattern requires; run
    every regex on every real turn unscreened and compare."""
    from models.corpus import conversations
    from qa_engine.text import TextBatch
    from rules.detector import make_rule_detector

    regexes = make_rule_detector()._compiled.regexes
    texts = [t.text for c in conversations(CORPORA) for t in c.turns]
    texts += ["全网最好的手机号13812345678", "亲，你是不是傻？", "一三八一二三四五六七八", "这是你自己的问题吧"]
    batch = TextBatch(texts)
    screened = regexes.find(batch)
    unscreened = {i: hits for i in range(len(texts))
                  if (hits := [m for k in range(len(regexes._entries)) for m in regexes._find(k, batch.view(i))])}
    assert unscreened  # the corpus holds real regex hits (phone numbers, addresses)
    assert {i: sorted(h, key=lambda m: (m.start, m.payload.id)) for i, h in screened.items()} == \
        {i: sorted(h, key=lambda m: (m.start, m.payload.id)) for i, h in unscreened.items()}


@needs_corpora
def test_one_text_and_many_texts_build_the_same_views_on_every_real_turn():
    """`normalise` (one text: translate + regex) and `TextBatch` (many: numpy tables) are two
    builds of one spec; they must agree on every real turn, offsets included."""
    from models.corpus import conversations
    from qa_engine.text import TextBatch, normalise

    texts = [t.text for c in conversations(CORPORA) for t in c.turns]
    batch = TextBatch(texts)
    for index, text in enumerate(texts):
        one, many = normalise.__wrapped__(text), batch.view(index)
        assert (one.folded, one.compact) == (many.folded, many.compact), text
        ends = [0, len(one.compact) - 1] if one.compact else []
        assert [one.compact_to_original(i, i + 1) for i in ends] == [many.compact_to_original(i, i + 1) for i in ends]


def test_an_alternation_runs_as_its_branches_and_they_find_what_the_whole_finds():
    """A pack regex ``A|B|C`` runs branch by branch (each with its own sharper screen); patterns
    that a split could change stay whole. On every real turn and every golden case text, each match
    of a whole pattern is found at the same span by one of its branches."""
    import re

    import yaml

    from rules.matcher import top_level_branches
    from rules.pack import BUNDLED_PACKS, load_rulebook

    assert top_level_branches("你(是不是)?傻|滚[开蛋]|[|]x") == ["你(是不是)?傻", "滚[开蛋]", "[|]x"]
    assert top_level_branches(r"a\|b|c") == [r"a\|b", "c"]
    for whole in ("(?i)top1|no1", r"(?P<value>\d{16})|卡号", r"(对)\1|好", "全网最好|全网最低", "(a|b)c"):
        assert top_level_branches(whole) == [whole]  # flags, names, back-references, a shared prefix, a group
    patterns = [spec.pattern for rule in load_rulebook().rules for spec in rule.regexes]
    assert any(len(top_level_branches(p)) > 1 for p in patterns)
    texts = [case["text"] for path in BUNDLED_PACKS.glob("*.cases.yaml")
             for case in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]]
    if CORPORA.exists():
        from models.corpus import conversations
        texts += [t.text for c in conversations(CORPORA) for t in c.turns]
    for pattern in patterns:
        whole, branches = re.compile(pattern), [re.compile(b) for b in top_level_branches(pattern)]
        for text in texts:
            for hit in whole.finditer(text):
                assert any(b.match(text, hit.start()) and b.match(text, hit.start()).end() == hit.end()
                           for b in branches), (pattern, text, hit.span())
