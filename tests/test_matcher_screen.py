"""The regex screen (issue #13): each regex runs only on the texts whose view holds one of its
necessary literal factors, derived from the pattern itself. A screen may make the rule path fast; it
may never drop a match: checked on random patterns built from the packs' constructs, on every real
agent turn of ``../shared/corpora`` and on every golden case."""

from __future__ import annotations

import re

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from qa_engine.schema import Conversation, Turn
from qa_engine.text import TextBatch
from rules.detector import CompiledRules, RuleDetector
from rules.matcher import RegexMatcher, necessary_factors
from rules.pack import BUNDLED_PACKS, load_rulebook

CORPORA = ROOT.parent / "shared" / "corpora"
needs_corpora = pytest.mark.skipif(not (CORPORA / "jddc_uss_usda").exists(), reason="../shared/corpora is absent")


def _sets(pattern: str) -> list[set[str]]:
    return [set(strings) for strings in necessary_factors(re.compile(pattern))]


def test_factors_spell_out_small_alternations_and_keep_the_strings_across_a_gap():
    assert _sets("你(是|也)(不是)?(傻|笨)")[0] == {"你是傻", "你是笨", "你也傻", "你也笨",
                                                  "你是不是傻", "你是不是笨", "你也不是傻", "你也不是笨"}
    gap = _sets("(你|您)连[^，,。]{1,8}都(不会|不懂)")  # a wide class separates factors
    assert {"你连", "您连"} in gap and {"都不会", "都不懂"} in gap
    assert _sets("最(?!好)") == [{"最"}]  # look-arounds consume nothing
    assert _sets("(?<=亲)一定(?=到)") == [{"一定"}]
    assert _sets("x(?:ab|cd)?y") == [{"xaby", "xcdy", "xy"}]
    assert _sets("(ab){2,}c") == [{"abab"}, {"abc"}, {"c"}]  # X{2,} holds XX and ends with X
    # case-insensitive parts say nothing about the characters typed; neither does a back-reference
    assert _sets("(?i)top1") == []
    assert _sets("第一(?i:b)上") == [{"第一"}, {"上"}]
    assert _sets(r"(a)\1") == [{"a"}]


def test_a_wide_alternation_runs_only_where_one_of_its_factors_is_typed(monkeypatch):
    """The issue #11 packs made the rule path 1.8x slower: a character screen could only demand a
    common character (你 …), so such regexes ran on much of every chat. The factor screen asks for
    whole strings of the pattern."""
    matcher = RegexMatcher([("(你|您)(是|也)(不是)?(傻|笨)", "compact", None, (), "conduct")])
    runs: list[int] = []
    real_find = matcher._find
    monkeypatch.setattr(matcher, "_find", lambda k, view: runs.append(k) or real_find(k, view))
    texts = ["你好，这款不笨重也不傻大", "您是不是傻", "你是说快递不到吗？也不笨", "傻 傻 的 你"]
    found = matcher.find(TextBatch(texts))
    assert [(text, [(m.start, m.end) for m in hits]) for text, hits in found.items()] == [(1, [(0, 5)])]
    assert len(runs) == 1  # only on the text that holds 您是不是傻; the character screen ran it on three


# --- random patterns from the packs' constructs, each with a sample it may match -----------------

ALPHABET = "你您是也不傻笨最好一定到了吗0123，。ab"
TYPED = ALPHABET + " -*全網Ａ１💯"  # separators and characters that fold, for the views


def _class(members: list[str]) -> str:
    return "".join("\\" + char if char in "^-]\\" else char for char in members)


LITERAL = st.sampled_from(ALPHABET).map(lambda char: (re.escape(char), char))
CLASS = st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=4, unique=True).flatmap(
    lambda members: st.sampled_from(members).map(lambda char: (f"[{_class(members)}]", char)))
NEGATED = st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=4, unique=True).flatmap(
    lambda members: st.sampled_from([c for c in TYPED if c not in members]).map(
        lambda char: (f"[^{_class(members)}]", char)))
WIDE = st.sampled_from([("[0-9]", "1"), ("[a-z]", "a"), (r"\d", "2"), ("[\u4e00-\u9fff]", "好"), (".", "。"),
                        ("^", ""), ("$", "")])
ATOM = st.one_of(LITERAL, LITERAL, LITERAL, CLASS, NEGATED, WIDE)


def _joined(parts: list[tuple[str, str]]) -> tuple[str, str]:
    return "".join(p for p, _ in parts), "".join(s for _, s in parts)


def _compound(inner: st.SearchStrategy[tuple[str, str]]) -> st.SearchStrategy[tuple[str, str]]:
    sequence = st.lists(inner, min_size=1, max_size=4).map(_joined)
    alternatives = st.lists(sequence, min_size=2, max_size=4)
    return st.one_of(
        st.tuples(alternatives, st.integers(0, 3), st.sampled_from(["(", "(?:", "(?P<value>"])).map(
            lambda a: (a[2] + "|".join(p for p, _ in a[0]) + ")", a[0][a[1] % len(a[0])][1])),
        st.tuples(inner, st.sampled_from([("?", 0), ("?", 1), ("*", 2), ("+", 1), ("{2}", 2), ("{1,3}", 3),
                                          ("{0,2}", 0), ("??", 1), ("+?", 2), ("{2,}", 2)])).map(
            lambda a: (f"(?:{a[0][0]}){a[1][0]}", a[0][1] * a[1][1])),
        sequence.map(lambda s: (f"(?={s[0]})", "")),
        sequence.map(lambda s: (f"(?!{s[0]})", "")),
        LITERAL.map(lambda s: (f"(?<={s[0]})", "")),
        CLASS.map(lambda s: (f"(?<!{s[0]})", "")),
        sequence.map(lambda s: (f"(?i:{s[0]})", s[1].upper())),
        sequence.map(lambda s: (f"(?P<again>{s[0]})(?P=again)", s[1] * 2)),
    )


PATTERNS = st.recursive(ATOM, _compound, max_leaves=10).flatmap(
    lambda first: st.lists(st.recursive(ATOM, _compound, max_leaves=10), max_size=4).map(
        lambda rest: _joined([first, *rest])))
NOISE = st.text(alphabet=TYPED, max_size=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(pattern=PATTERNS, tops=st.lists(PATTERNS, max_size=2), context=st.lists(st.tuples(NOISE, NOISE), min_size=4,
                                                                             max_size=4), noise=st.lists(NOISE, max_size=4))
def test_the_screen_never_rejects_a_text_the_regex_matches(pattern, tops, context, noise):
    regex = "|".join(p for p, _ in [pattern, *tops])  # sometimes a top-level alternation, run as its branches
    try:
        compiled = re.compile(regex)
    except re.error:
        assume(False)
    samples = [sample for _, sample in [pattern, *tops]]
    texts = [before + sample + after for sample, (before, after) in zip(samples * 4, context)] + noise
    texts += ["-".join(sample) for sample in samples]  # whole in the compact view only
    factors = necessary_factors(compiled)
    for text in texts:  # every match, from every start, holds a string of each factor set
        for start in range(len(text) + 1):
            if (hit := compiled.match(text, start)) is not None:
                assert all(any(string in hit.group() for string in strings) for strings in factors), (regex, text)
    entries = [(regex, view, None, (), view) for view in ("compact", "folded")]
    batch, screened = TextBatch(texts), RegexMatcher(entries)
    assert screened.find(batch) == RegexMatcher(entries, screen=False).find(batch)
    _same_candidates_by_both_builds(screened, batch)


def _same_candidates_by_both_builds(matcher: RegexMatcher, batch: TextBatch) -> None:
    """The automaton pass (small batches) and the array operations (large ones) pass the same pairs."""
    scanned, arrays = matcher._screen.scan(batch), matcher._screen.arrays(batch)
    assert [axis.tolist() for axis in scanned] == [axis.tolist() for axis in arrays]


# --- the packs: findings with and without the screen ------------------------------------------------

@pytest.fixture(scope="module")
def unscreened() -> RuleDetector:
    detector = RuleDetector(load_rulebook())
    detector._compiled = CompiledRules.build(detector.rulebook, screen=False)
    return detector


def test_every_golden_case_explains_the_same_with_and_without_the_screen(rule_detector, unscreened):
    cases = [case for path in sorted(BUNDLED_PACKS.glob("*.cases.yaml"))
             for case in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]]
    conversations = [Conversation(conversation_id=f"case-{n}", turns=tuple(
        [Turn(role=t["role"], text=t["text"]) for t in case.get("context", [])]
        + [Turn(role=case.get("role", "agent"), text=case["text"])])) for n, case in enumerate(cases)]
    screened = rule_detector.explain_many(conversations)
    assert sum(map(len, screened)) > len(cases) // 2  # the cases hold hits: not a vacuous comparison
    assert screened == unscreened.explain_many(conversations)


@needs_corpora
def test_every_real_agent_turn_has_the_same_findings_with_and_without_the_screen(rule_detector, unscreened):
    from models.corpus import conversations

    real = conversations(CORPORA)
    screened = rule_detector.detect_many(real)
    assert sum(map(len, screened)) > 20  # real hits, not a vacuous comparison
    assert screened == unscreened.detect_many(real)
    _same_candidates_by_both_builds(rule_detector._compiled.regexes, TextBatch([t.text for c in real for t in c.turns]))


@needs_corpora
def test_the_screen_runs_few_regexes_on_real_agent_turns(rule_detector, monkeypatch):
    """The cost of issue #11's packs: 7,360 regex runs on the 6,369 real agent turns with a
    character screen; the factor screen ran about 1,100 with those packs and about 2,100 after the
    round-3 and round-4 packs (168 regexes; real matches: a few dozen)."""
    from models.corpus import conversations

    regexes = rule_detector._compiled.regexes
    runs: list[int] = []
    real_find = regexes._find
    monkeypatch.setattr(regexes, "_find", lambda k, view: runs.append(k) or real_find(k, view))
    rule_detector.detect_many(conversations(CORPORA))
    assert 0 < len(runs) <= 2500
