"""Multi-pattern matching over normalised views (Aho-Corasick plus compiled regexes).

`TermMatcher` runs one Aho-Corasick automaton (pyahocorasick) over the *phonetic* view of
the compact text, so a literal term, its traditional / full-width / spaced-out spelling
and its pinyin or homophone spelling are found in one pass. Each candidate is then
classified against the compact view:

- ``literal``: the compact text equals the term;
- ``pinyin``: some term characters were typed as pinyin (全网zui好), the others literally;
- ``homophone``: exactly one character of a term was replaced by a same-sounding one, the
  others literally: in a term of three or more characters any sound-alike (全网醉好), in a
  two-character term only a rare one (蕞好 — outside the 3,755 common characters of GB 2312
  level 1, which no one types by accident);
- ``pinyin`` also when a term is spelled wholly in pinyin: a term of three or more characters
  (quanwangzuihao), or of two when the pinyin is a Latin run of its own (行业diyi, ZUIHAO的);
- ``initials``: a whole Latin run equal to the pinyin initials of a term of four or more
  characters (qwzh = 全网最好).

A digit standing alone for its numeral (唯1, 独1无2) counts as that character typed literally.
Anything looser (two homophones, a common sound-alike in a short term, short pinyin inside a
longer Latin run) is dropped: sound-alike matching beyond that flags ordinary words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, TypeVar

import ahocorasick
import numpy as np

try:  # the regex parser is private; its layout has held since Python 3.5
    from re import _constants, _parser
except ImportError:  # Python 3.10
    import sre_constants as _constants  # type: ignore[no-redef]
    import sre_parse as _parser  # type: ignore[no-redef]

from qa_engine.text import CODE_POINTS, LATIN_RUN, NUMERALS, OffsetMap, PhoneticFolder, TextBatch, TextView, fold, syllables

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
        >>> [(m.payload, m.start, m.end, m.how) for m in matcher.find(TextBatch(["全網 zui 好"]))[0]]
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

    def find(self, batch: TextBatch) -> dict[int, list[Match[Payload]]]:
        """Hits by text of the batch (texts without hits left out), from one automaton pass over
        its phonetic view."""
        found: dict[int, list[Match[Payload]]] = {}
        if self._empty:
            return found
        compact = batch.compact
        phonetic, phonetic_map = self.phonetic(compact)
        for last, (length, values) in self._automaton.iter(phonetic):
            start, end = last - length + 1, last + 1
            compact_start, compact_end = (start, end) if phonetic_map is None else phonetic_map.to_source(start, end)
            typed = compact[compact_start:compact_end]
            if (typed[0] <= "9" or typed[-1] <= "9") and _inside_number(compact, compact_start, compact_end):
                continue  # 第12, top10: a digit of a number is no numeral
            for term, payload in values:
                how = _classify(term, typed, start, phonetic_map, compact, compact_start)
                if how is not None:
                    text = batch.text_at(compact_start)
                    found.setdefault(text, []).append(Match(payload, *batch.to_original(text, compact_start, compact_end), how))
        if self._initials:
            for run in LATIN_RUN.finditer(compact):
                for _, payload in self._initials.get(run.group(), ()):
                    text = batch.text_at(run.start())
                    found.setdefault(text, []).append(Match(payload, *batch.to_original(text, *run.span()), "initials"))
        return found


def pinyin_initials(term: str) -> str | None:
    """``qwzh`` for 全网最好: the first letter of each character's first reading (terms of
    ``INITIALS_MIN_CHARS`` or more Chinese characters only)."""
    if len(term) < INITIALS_MIN_CHARS or not all(_CJK.match(char) for char in term):
        return None
    readings = [syllables(char) for char in term]
    return "".join(r[0][0] for r in readings) if all(readings) else None


def _inside_number(compact: str, start: int, end: int) -> bool:
    """A hit beginning or ending with a digit that continues a number (第12, 唯1.5)."""
    return ((compact[start].isdigit() and start > 0 and (compact[start - 1].isdigit() or compact[start - 1] == "."))
            or (compact[end - 1].isdigit() and end < len(compact) and (compact[end].isdigit() or compact[end] == ".")))


def _latin_at(compact: str, index: int) -> bool:
    return 0 <= index < len(compact) and "a" <= compact[index] <= "z"


@lru_cache(maxsize=4096)
def _rare(char: str) -> bool:
    """Outside GB 2312 level 1 (the 3,755 common characters): typed on purpose, not by accident."""
    try:
        return char.encode("gb2312")[0] >= 0xD8
    except UnicodeEncodeError:
        return True


def _classify(term: str, typed: str, start: int, phonetic_map: OffsetMap | None, compact: str,
              compact_start: int) -> str | None:
    if typed == term:
        return "literal"
    if phonetic_map is None:
        pieces = list(typed)
    else:  # one piece of typed text per term character: a character, a pinyin syllable or a digit
        spans = [phonetic_map.to_source(i, i + 1) for i in range(start, start + len(term))]
        base = spans[0][0]
        pieces = [typed[s - base:e - base] for s, e in spans]
    same = [piece == char or NUMERALS.get(piece) == char for piece, char in zip(pieces, term)]
    if all(same):
        return "literal"
    pinyin = sum(1 for piece, ok in zip(pieces, same) if not ok and piece.isascii() and piece.isalpha())
    literal = sum(1 for ok, char in zip(same, term) if ok and _CJK.match(char))
    alike = [piece for piece, ok in zip(pieces, same) if not ok and not (piece.isascii() and piece.isalpha())]
    if literal == 0:  # all pinyin: a short term only as a Latin run of its own
        own_run = not _latin_at(compact, compact_start - 1) and not _latin_at(compact, compact_start + len(typed))
        return "pinyin" if pinyin == len(term) and (len(term) >= 3 or own_run) else None
    if pinyin and not alike:
        return "pinyin"
    if not pinyin and len(alike) == 1 and (len(term) >= 3 or _rare(alike[0])):
        return "homophone"
    return None


class RegexMatcher(Generic[Payload]):
    """Compiled regexes on the folded or compact view, with optional validators.

    A regex with a group named ``value`` cites (and validates) that group only: the context
    around it (卡号 before a number) must match but is not part of the finding.

    Most regexes cannot match most chat turns, and calling each one per turn is what costs: a
    regex runs only on texts holding at least one character of each of its `required_chars`
    sets, a sound pre-screen derived from the pattern itself (one bit per set, tested for a whole
    batch of texts at once).
    """

    def __init__(self, entries: Iterable[tuple[str, str, Callable[[str], bool] | None, tuple[str, ...], Payload]]) -> None:
        # ``requires``: literals of which one must occur, tried as one alternation (one scan of the text).
        # A pattern ``A|B|C`` runs as its branches, each with its own (sharper) screen.
        self._entries = [(re.compile(branch), view, validator,
                          re.compile("|".join(map(re.escape, requires))) if requires else None, payload)
                         for pattern, view, validator, requires, payload in entries
                         for branch in top_level_branches(pattern)]
        screens = [required_chars(entry[0]) for entry in self._entries]
        sets = sorted({chars for screen in screens for chars in screen}, key=sorted)
        chars = sorted({char for chars in sets for char in chars})
        # a character's slot (0: in no screen set) and each slot's mask: bit j = in screen set j
        self._slot = np.zeros(CODE_POINTS, dtype=np.uint16)
        self._slot[[ord(char) for char in chars]] = np.arange(1, len(chars) + 1)
        words = max(1, -(-len(sets) // 64))
        self._slot_masks = np.zeros((len(chars) + 1, words), dtype=np.uint64)
        self._needs = np.zeros((words, len(screens)), dtype=np.uint64)  # per 64-set word: the bits regex k needs
        for j, members in enumerate(sets):
            bit = np.uint64(1 << (j % 64))
            for char in members:
                self._slot_masks[chars.index(char) + 1, j // 64] |= bit
            for k, screen in enumerate(screens):
                if members in screen:
                    self._needs[j // 64, k] |= bit

    def find(self, batch: TextBatch) -> dict[int, list[Match[Payload]]]:
        """Hits by text of the batch; a regex runs only on the texts holding a character of each
        of its screen sets (a handful of array operations for the whole batch and every regex)."""
        found: dict[int, list[Match[Payload]]] = {}
        if not batch.folded_codes.size:
            return found
        # the folded view's characters: a superset of the compact view's; the boundary is in no set
        starts = np.minimum(batch.starts, batch.folded_codes.size - 1)
        masks = np.bitwise_or.reduceat(self._slot_masks[self._slot[batch.folded_codes]], starts, axis=0)
        passes = np.ones((len(masks), len(self._entries)), dtype=bool)
        for word, needs in enumerate(self._needs):  # texts × regexes, one 64-set word at a time
            passes &= (masks[:, word, None] & needs) == needs
        for text, k in zip(*(axis.tolist() for axis in np.nonzero(passes))):
            if hits := self._find(k, batch.view(text)):
                found.setdefault(text, []).extend(hits)
        return found

    def _find(self, k: int, view: TextView) -> list[Match[Payload]]:
        pattern, view_name, validator, requires, payload = self._entries[k]
        text = view.compact if view_name == "compact" else view.folded
        if requires is not None and requires.search(text) is None:
            return []
        found = []
        group = "value" if "value" in pattern.groupindex else 0  # context outside (?P<value>…) is not cited
        for hit in pattern.finditer(text):
            start, end = hit.span(group)
            if end <= start or (validator is not None and not validator(hit.group(group))):
                continue
            if view_name == "compact":
                start, end = view.compact_to_original(start, end)
            found.append(Match(payload, start, end, "regex"))
        return found


_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=|\(\?\(")


def top_level_branches(pattern: str) -> list[str]:
    """The branches of a pattern that is one top-level alternation (``A|B|C`` → A, B, C), else the
    pattern itself. Run one by one they find what the whole finds (overlaps within a category are
    resolved later, longest first). Patterns with flags, group names or back-references stay whole."""
    parsed = _parser.parse(pattern)
    if (len(parsed) != 1 or parsed[0][0] is not _constants.BRANCH or re.compile(pattern).groupindex
            or (pattern.startswith("(?") and pattern[2:3].isalpha()) or _BACKREFERENCE.search(pattern)):
        return [pattern]
    branches, depth, start, index, in_class = [], 0, 0, 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 1
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            index += pattern[index + 1:index + 2] == "^"
            index += pattern[index + 1:index + 2] == "]"  # a leading ] is a member
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            branches.append(pattern[start:index])
            start = index + 1
        index += 1
    branches.append(pattern[start:])
    return branches if len(branches) == len(parsed[0][1][1]) else [pattern]


# characters found in most chat turns (function words, chat particles, digits): poor screens
_COMMON = frozenset("的一是不了在有人我他这个们来上大为和到说时要就出会可也你您对能子那得下自之过发后作"
                    "里用道行所然家事成多么去都现当没动看定天还好小些样想从只以把给吗呢吧啊哦亲哈嗯呀"
                    "0123456789")


def _screen_cost(chars: frozenset[str]) -> int:
    return len(chars) + 10 * len(chars & _COMMON)


_REPEATS = tuple(getattr(_constants, name) for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
                 if hasattr(_constants, name))
_MAX_RANGE = 512  # a wider character class says nothing useful


def required_chars(pattern: re.Pattern[str]) -> list[frozenset[str]]:
    """Character sets of which every match of ``pattern`` holds at least one character each
    (empty when nothing can be said: a case-insensitive pattern, or only wide classes)."""
    if pattern.flags & re.IGNORECASE:
        return []
    return _sequence(_parser.parse(pattern.pattern, pattern.flags))


def _sequence(items) -> list[frozenset[str]]:
    return [chars for op, argument in items for chars in _item(op, argument)]


def _item(op, argument) -> list[frozenset[str]]:
    if op is _constants.LITERAL:
        return [frozenset(chr(argument))]
    if op is _constants.IN:
        chars = _class(argument)
        return [chars] if chars else []
    if op in _REPEATS:
        low, _, sub = argument
        return _sequence(sub) if low >= 1 else []
    if op is _constants.SUBPATTERN:
        return _sequence(argument[-1])
    if op is getattr(_constants, "ATOMIC_GROUP", None):
        return _sequence(argument)
    if op is _constants.BRANCH:
        union: set[str] = set()
        for alternative in argument[1]:
            sets = _sequence(alternative)
            if not sets:
                return []
            union |= min(sets, key=_screen_cost)  # 有病: screen on 病, not on 有
        return [frozenset(union)]
    return []  # look-arounds, anchors, any character, categories, back-references


def _class(items) -> frozenset[str] | None:
    chars: set[str] = set()
    for op, value in items:
        if op is _constants.LITERAL:
            chars.add(chr(value))
        elif op is _constants.RANGE and value[1] - value[0] <= _MAX_RANGE:
            chars.update(map(chr, range(value[0], value[1] + 1)))
        else:  # negated, a category such as \d, or a wide range
            return None
    return frozenset(chars)
