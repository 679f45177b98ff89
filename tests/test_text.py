"""Normalised views and their offset maps."""

from __future__ import annotations

import pytest

from qa_engine.text import PhoneticFolder, TextBatch, normalise
from rules.matcher import TermMatcher

# fmt: off
EVASIONS = [
    # (typed text, the evidence the finding must cite, how it was matched)
    ("亲，这款是全网最好的",           "全网最好",          "literal"),
    ("亲，这款是全網最好的",           "全網最好",          "literal"),    # traditional
    ("亲，这款是全网最好的哦",          "全网最好",          "literal"),
    ("这款是全 网 最 好的",            "全 网 最 好",        "literal"),    # spaces
    ("这款是全-网-最-好的",            "全-网-最-好",        "literal"),    # symbols
    ("这款是全\u3000网\u3000最\u3000好", "全\u3000网\u3000最\u3000好", "literal"),  # ideographic spaces
    ("这款是全\u200b网\u200d最好的",    "全\u200b网\u200d最好", "literal"),    # zero-width
    ("这款是全网zui好的",             "全网zui好",         "pinyin"),
    ("这款是全网ZUI好的",             "全网ZUI好",         "pinyin"),     # upper-case pinyin
    ("这款是全网 zui 好的",            "全网 zui 好",        "pinyin"),
    ("这款是全网醉好的",              "全网醉好",          "homophone"),
    ("这款是全網ｚｕｉ好的",            "全網ｚｕｉ好",        "pinyin"),     # traditional + full-width pinyin
    ("这款是全网最✨好的",             "全网最✨好",         "literal"),    # emoji between characters
    ("这款quanwangzuihao",          "quanwangzuihao",   "pinyin"),     # whole-word pinyin
    ("这款是qwzh哦",                 "qwzh",             "initials"),   # pinyin initials
    ("这款是全网最hǎo的",             "全网最hǎo",         "pinyin"),     # tone-marked pinyin
    ("这款是全网ZUÌHǍO",             "全网ZUÌHǍO",        "pinyin"),     # upper-case tone marks
    ("这款是全网蕞好的",              "全网蕞好",          "homophone"),
    ("这款是全网𝐳𝐮𝐢好的",             "全网𝐳𝐮𝐢好",         "pinyin"),     # mathematical bold letters
]

SHORT_TERMS = [
    # (typed text, the evidence, how) for two-character terms: 最好, 唯一, 独一无二
    ("这款蕞好",          "蕞好",    "homophone"),  # a rare sound-alike (outside GB 2312 level 1)
    ("ZUIHAO的蚕丝",      "ZUIHAO",  "pinyin"),     # whole pinyin as a Latin run of its own
    ("全网唯1",           "唯1",     "literal"),    # a lone digit for its numeral
    ("独1无2的设计",       "独1无2",  "literal"),
]
# fmt: on


@pytest.fixture(scope="module")
def matcher() -> TermMatcher:
    return TermMatcher([("全网最好", "network_best")])


@pytest.mark.parametrize(("text", "evidence", "how"), EVASIONS)
def test_evasions_are_found_with_original_spans(matcher, text, evidence, how):
    matches = matcher.find(TextBatch([text])).get(0, [])
    assert [(text[m.start:m.end], m.how) for m in matches] == [(evidence, how)]


@pytest.mark.parametrize("text", ["全网最低", "全网都说好", "全，网，最，好", "qwz", "qwzhx", "全网罪号"])
def test_non_matches(matcher, text):
    # 全，网 … : clause punctuation never joins words; all-pinyin and two homophones are too loose
    assert matcher.find(TextBatch([text])).get(0, []) == []


@pytest.fixture(scope="module")
def short_matcher() -> TermMatcher:
    return TermMatcher([("最好", "superlative"), ("唯一", "unique"), ("独一无二", "unique")])


@pytest.mark.parametrize(("text", "evidence", "how"), SHORT_TERMS)
def test_short_term_evasions(short_matcher, text, evidence, how):
    assert [(text[m.start:m.end], m.how) for m in short_matcher.find(TextBatch([text])).get(0, [])] == [(evidence, how)]


@pytest.mark.parametrize("text", ["这款醉好", "zuihaox", "xzuihao", "唯12", "唯1.5", "独11无2"])
def test_short_term_non_matches(short_matcher, text):
    # a common sound-alike, pinyin inside a longer Latin run, digits of a number
    assert short_matcher.find(TextBatch([text])).get(0, []) == []


def test_views_keep_offsets_for_every_character():
    text = "Ａ全 網-最\u200b好！99.9%"
    view = normalise(text)
    assert view.folded == "a全 网-最 好!99.9%"
    assert len(view.folded) == len(text)
    assert view.compact == "a全网最好!99.9%"
    chars = [view.compact_to_original(i, i + 1) for i in range(len(view.compact))]
    for index, (s, e) in enumerate(chars):
        assert view.folded[s:e] == view.compact[index]  # each compact character's own source
    for start in range(len(chars)):
        for end in range(start + 1, len(chars) + 1):
            assert view.compact_to_original(start, end) == (chars[start][0], chars[end - 1][1])


def test_full_width_and_compatibility_forms_fold():
    assert normalise("ＮＯ．１").compact == "no1"
    assert normalise("⼀流").compact == "一流"  # Kangxi radical look-alike
    assert normalise("①").compact == "1"
    assert normalise("ℕ𝐨.𝟏").compact == "no1"  # letter-like and mathematical forms (№ folds to two letters: a term)
    assert normalise("Dǐ").folded == "di"


def test_phonetic_folder_splits_latin_runs_only_when_whole():
    folder = PhoneticFolder("最好")
    assert folder("zuihao")[0] == "最好"
    assert folder("zuihaox")[0] == "zuihaox"
    text, offsets = folder("全网zui好")
    assert text == "全网最好" and offsets.to_source(2, 3) == (2, 5)


def test_texts_normalised_together_keep_their_own_views_and_offsets():
    texts = ["全 網-最\u200b好", "", "99.9% 第1", "a\x00b 全网zui好", "ＮＯ．１", "1..2 .5 3.", "💯 后天到 最💯好 💯💯", "💯"]
    together = TextBatch(texts)
    for index, text in enumerate(texts):
        view, alone = together.view(index), normalise(text)
        assert (view.original, view.folded, view.compact) == (alone.original, alone.folded, alone.compact)
        assert len(view.folded) == len(text)
        spans = [view.compact_to_original(i, i + 1) for i in range(len(view.compact))]
        assert spans == [alone.compact_to_original(i, i + 1) for i in range(len(alone.compact))]
        assert all(view.folded[s:e].strip() for s, e in spans)  # every compact character cites typed text
    assert together.view(3).compact == "a b全网zui好".replace(" ", "")  # a typed NUL folds to a space



def test_hundred_emoji_stays_for_the_regexes_and_is_skipped_by_terms(matcher):
    # 💯 says 百分百 (💯后天到): kept in the compact view; between a term's characters it hides nothing
    for text in ("💯后天到", "好的 💯 !", "全网最💯好"):
        assert normalise(text).compact == TextBatch([text, ""]).view(0).compact == text.replace(" ", "")
    text = "这款全网最💯好"
    assert [(text[m.start:m.end], m.how) for m in matcher.find(TextBatch([text]))[0]] == [("全网最💯好", "literal")]


@pytest.mark.parametrize(("typed", "folded"), [
    ("nо.1", "no.1"),          # Cyrillic о
    ("ΝΟ.1", "no.1"),          # Greek capitals
    ("zuі好", "zui好"),         # Cyrillic і inside pinyin
    ("β-胡萝卜素", "β-胡萝卜素"),  # a Greek letter with no Latin look-alike stays
])
def test_cyrillic_and_greek_look_alikes_read_as_latin(typed, folded):
    view = normalise(typed)
    assert view.folded == folded and len(view.folded) == len(typed)
    assert TextBatch([typed, ""]).view(0).folded == folded


@pytest.mark.parametrize(("typed", "folded"), [
    ("第❶", "第1"), ("第➀", "第1"), ("第⓵", "第1"), ("第⑴", "第1"), ("第Ⅰ", "第1"), ("第ⅸ", "第9"),
    ("①", "1"),                # NFKC already
    ("㊀定", "一定"),            # a circled ideograph
    ("⑩", "⑩"),               # ten is no single digit: left as typed
])
def test_digits_drawn_as_symbols_read_as_digits(typed, folded):
    assert normalise(typed).folded == folded == TextBatch([typed, ""]).view(0).folded
