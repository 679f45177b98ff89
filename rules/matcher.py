"""Multi-pattern matching over normalised views (Aho-Corasick plus compiled regexes).

`TermMatcher` runs one Aho-Corasick automaton (pyahocorasick) over the *phonetic* view of
the compact text, so a literal term, its traditional / full-width / spaced-out spelling
and its pinyin or homophone spelling are found in one pass. Each candidate is then
classified against the compact view:

- ``literal``: the compact text equals the term;
- ``pinyin``: some term characters were typed as pinyin (全网zui好), the others literally;
- ``homophone``: exactly one character of a term of three or more characters was replaced
  by a same-sounding one (全网醉好), the others literally;
- ``pinyin`` also when a term of three or more characters is spelled wholly in pinyin
  (quanwangzuihao): a whole Latin run that splits into exactly its syllables;
- ``initials``: a whole Latin run equal to the pinyin initials of a term of four or more
  characters (qwzh = 全网最好).

Anything looser (two homophones, a short term with no literal character) is dropped:
sound-alike matching beyond that flags ordinary words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import ahocorasick

from qa_engine.text import LATIN_RUN, OffsetMap, PhoneticFolder, TextView, fold, syllables

Payload = TypeVar("Payload")

_CJK = re.compile(r"[\u3400-\u9fff]")
INITIALS_MIN_CHARS = 4  # shorter initials (qw, zh) are ordinary Latin text


@dataclass(frozen=True, slots=True)
class Match(Generic[Payload]):
    """A match, with its span in the original text."""

    payload: Payload
    start: int
    end: int
    how: str  # literal | pinyin | homophone | regex


class TermMatcher(Generic[Payload]):
    """Finds lexicon terms, evasions included, in a `TextView`.

    Example:
        >>> matcher = TermMatcher([("全网最好", "ad")])
        >>> [(m.payload, m.start, m.end, m.how) for m in matcher.find(normalise("全網 zui 好"))]
        [('ad', 0, 8, 'pinyin')]
    """

    def __init__(self, entries: Iterable[tuple[str, Payload]]) -> None:
        compact_entries = [(fold(term), payload) for term, payload in entries]
        self.phonetic = PhoneticFolder("".join(term for term, _ in compact_entries))
        self._automaton = ahocorasick.Automaton()
        by_key: dict[str, list[tuple[str, Payload]]] = {}
        for term, payload in compact_entries:
            key, _ = self.phonetic(term)
            by_key.setdefault(key, []).append((term, payload))
        for key, values in by_key.items():
            self._automaton.add_word(key, (len(key), tuple(values)))
        self._initials: dict[str, list[tuple[str, Payload]]] = {}
        for term, payload in compact_entries:
            if initials := pinyin_initials(term):
                self._initials.setdefault(initials, []).append((term, payload))
        self._empty = not by_key
        if by_key:
            self._automaton.make_automaton()

    def find(self, view: TextView) -> Iterator[Match[Payload]]:
        if self._empty:
            return
        phonetic, phonetic_map = self.phonetic(view.compact)
        for last, (length, values) in self._automaton.iter(phonetic):
            start, end = last - length + 1, last + 1
            compact_start, compact_end = (start, end) if phonetic_map is None else phonetic_map.to_source(start, end)
            typed = view.compact[compact_start:compact_end]
            for term, payload in values:
                how = _classify(term, typed, start, phonetic_map)
                if how is not None:
                    orig_start, orig_end = view.compact_to_original(compact_start, compact_end)
                    yield Match(payload, orig_start, orig_end, how)
        if self._initials:
            for run in LATIN_RUN.finditer(view.compact):
                for _, payload in self._initials.get(run.group(), ()):
                    yield Match(payload, *view.compact_to_original(*run.span()), "initials")


def pinyin_initials(term: str) -> str | None:
    """``qwzh`` for 全网最好: the first letter of each character's first reading (terms of
    ``INITIALS_MIN_CHARS`` or more Chinese characters only)."""
    if len(term) < INITIALS_MIN_CHARS or not all(_CJK.match(char) for char in term):
        return None
    readings = [syllables(char) for char in term]
    return "".join(r[0][0] for r in readings) if all(readings) else None


def _classify(term: str, typed: str, start: int, phonetic_map: OffsetMap | None) -> str | None:
    if typed == term:
        return "literal"
    if phonetic_map is None:
        pieces = list(typed)
    else:  # one piece of typed text per term character: a character or a pinyin syllable
        spans = [phonetic_map.to_source(i, i + 1) for i in range(start, start + len(term))]
        base = spans[0][0]
        pieces = [typed[s - base:e - base] for s, e in spans]
    pinyin = sum(1 for piece, char in zip(pieces, term) if piece != char and piece.isascii() and piece.isalpha())
    literal = sum(1 for piece, char in zip(pieces, term) if piece == char and _CJK.match(char))
    homophones = len(term) - pinyin - sum(1 for piece, char in zip(pieces, term) if piece == char)
    if literal == 0:
        return "pinyin" if pinyin == len(term) >= 3 else None
    if pinyin and homophones == 0:
        return "pinyin"
    if not pinyin and homophones == 1 and len(term) >= 3:
        return "homophone"
    return None


class RegexMatcher(Generic[Payload]):
    """Compiled regexes on the folded or compact view, with optional validators."""

    def __init__(self, entries: Iterable[tuple[str, str, Callable[[str], bool] | None, tuple[str, ...], Payload]]) -> None:
        self._entries = [(re.compile(pattern), view, validator, requires, payload)
                         for pattern, view, validator, requires, payload in entries]

    def find(self, view: TextView) -> Iterator[Match[Payload]]:
        for pattern, view_name, validator, requires, payload in self._entries:
            text = view.compact if view_name == "compact" else view.folded
            if requires and not any(literal in text for literal in requires):
                continue
            for found in pattern.finditer(text):
                if found.end() == found.start() or (validator is not None and not validator(found.group())):
                    continue
                start, end = found.span()
                if view_name == "compact":
                    start, end = view.compact_to_original(start, end)
                yield Match(payload, start, end, "regex")
