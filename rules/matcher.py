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

import math
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, NamedTuple, TypeVar

import ahocorasick
import numpy as np

try:  # the regex parser is private; its layout has held since Python 3.5
    from re import _constants, _parser
except ImportError:  # Python 3.10
    import sre_constants as _constants  # type: ignore[no-redef]
    import sre_parse as _parser  # type: ignore[no-redef]

from qa_engine.text import (CODE_POINTS, LATIN_RUN, NUMERALS, OffsetMap, PhoneticFolder, TextBatch, TextView,
                            code_points, fold, syllables)

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
    regex runs only on the texts that pass its `FactorScreen`, built from the pattern itself.
    """

    def __init__(self, entries: Iterable[tuple[str, str, Callable[[str], bool] | None, tuple[str, ...], Payload]],
                 screen: bool = True) -> None:
        # ``screen=False`` runs every regex on every text (the reference the screen is measured against).
        # ``requires``: literals of which one must occur, tried as one alternation (one scan of the text).
        # A pattern ``A|B|C`` runs as its branches, each with its own (sharper) screen.
        self._entries = [(re.compile(branch), view, validator,
                          re.compile("|".join(map(re.escape, requires))) if requires else None, payload)
                         for pattern, view, validator, requires, payload in entries
                         for branch in top_level_branches(pattern)]
        self._screen = FactorScreen([[(entry[1], grams) for grams in screen_sets(entry[0])] if screen else []
                                     for entry in self._entries])

    def find(self, batch: TextBatch) -> dict[int, list[Match[Payload]]]:
        """Hits by text of the batch; a regex runs only on the texts its screen passes."""
        found: dict[int, list[Match[Payload]]] = {}
        if not batch.folded_codes.size:
            return found
        for k, text in zip(*(axis.tolist() for axis in self._screen.candidates(batch))):
            if hits := self._find(k, batch.view(text)):
                found.setdefault(text, []).extend(hits)
        return dict(sorted(found.items()))

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


class FactorScreen:
    """Which regexes may match which texts of a batch, for every regex and text at once.

    Regex k may match a text only if the view it reads holds a gram of each of its screen sets
    (`screen_sets`: its necessary factors, each string cut to its sharpest few characters, so the
    screen never drops a match). Per view, each character of a gram has a slot; a one-character gram
    is a look-up per position, a longer one is packed into one integer of slots and found by a
    binary search among the grams' integers, at the positions that hashed filters of the grams'
    pairs of characters did not rule out (a filter may let a position through, never hold one back).
    """

    def __init__(self, screens: list[list[tuple[str, frozenset[str]]]]) -> None:
        chars = {view: sorted({char for keys in screens for v, grams in keys if v == view for gram in grams
                               for char in gram}) for view in ("compact", "folded")}
        if max(map(len, chars.values())) >= 1 << 16:
            raise ValueError("regex screens hold more than 65,535 distinct characters")
        self._bits = max(1, *(len(members).bit_length() for members in chars.values()))  # per slot in a gram
        longest = min(GRAM, 63 // self._bits)  # a gram cut to its start still holds wherever the gram does
        screens = [[(view, frozenset(gram[:longest] for gram in grams)) for view, grams in keys] for keys in screens]
        sets = sorted({key for keys in screens for key in keys}, key=lambda key: (key[0], sorted(key[1])))
        column = {key: j for j, key in enumerate(sets)}
        self._sets = len(sets)
        # the screen sets regex k needs, padded with len(sets): a set every text holds
        self._columns = np.full((len(screens), max([1, *map(len, screens)])), len(sets))
        for k, keys in enumerate(screens):
            self._columns[k, :len(keys)] = [column[key] for key in keys]
        holders: dict[tuple[str, str], list[int]] = {}  # (view, gram) → the screen sets holding it
        for j, (view, grams) in enumerate(sets):
            for gram in grams:
                holders.setdefault((view, gram), []).append(j)
        # for small batches: per view an automaton of the grams (value: the sets holding it); the regexes
        # by their first set, and each regex's other sets
        self._automata: list[tuple[str, ahocorasick.Automaton]] = []
        for view in ("compact", "folded"):
            automaton = ahocorasick.Automaton()
            for (v, gram), js in holders.items():
                if v == view:
                    automaton.add_word(gram, tuple(js))
            if len(automaton):
                automaton.make_automaton()
                self._automata.append((view, automaton))
        self._by_first: dict[int, list[int]] = {}
        for k, columns in enumerate(self._columns.tolist()):
            self._by_first.setdefault(columns[0], []).append(k)
        self._rest = [frozenset(columns[1:]) - {len(sets)} for columns in self._columns.tolist()]
        # per view: a slot per character of its grams; the sets holding each one-character gram; a
        # filter of the slot pairs that start a longer gram; per length, the grams' filters (a pair
        # of slots at each offset) and the grams packed into integers (sorted) with their sets
        self._views: list[tuple[str, np.ndarray, int, _Rows, np.ndarray | None, list]] = []
        for view, members in chars.items():
            if not members:
                continue
            singles = sorted(gram for v, gram in holders if v == view and len(gram) == 1)
            members = singles + [char for char in members if (view, char) not in holders]  # singles: slots 1, 2, …
            slot = np.zeros(CODE_POINTS, dtype=np.uint16)
            slot[[ord(char) for char in members]] = np.arange(1, len(members) + 1)
            single_sets = _Rows([[], *(holders[view, char] for char in singles)])  # by slot
            by_length: dict[int, list[str]] = {}
            for v, gram in holders:
                if v == view and len(gram) > 1:
                    by_length.setdefault(len(gram), []).append(gram)
            lengths = []
            for length, grams in sorted(by_length.items()):
                codes = code_points("".join(grams)).reshape(len(grams), length)
                slots = slot[codes].astype(np.uint64)
                pairs = slots[:, :-1] << np.uint64(self._bits) | slots[:, 1:]
                packed = np.zeros(len(grams), dtype=np.uint64)
                for offset in range(length):
                    packed = packed << np.uint64(self._bits) | slots[:, offset]
                order = np.argsort(packed)
                lengths.append((length, [_pair_filter(pairs[:, offset]) for offset in range(length - 1)],
                                packed[order], _Rows([holders[view, grams[i]] for i in order.tolist()])))
            starting = np.logical_or.reduce([filters[0] for _, filters, _, _ in lengths]) if lengths else None
            self._views.append((view, slot, len(singles), single_sets, starting, lengths))

    def candidates(self, batch: TextBatch) -> tuple[np.ndarray, np.ndarray]:
        """(regexes, texts): the pairs that pass the screen, by regex, then by text; the same pairs by
        either of two builds (the tests hold them equal): an automaton pass for a small batch (a live
        draft, a conversation), array operations for a large one (their fixed cost is larger, their
        cost per character far smaller)."""
        return self.scan(batch) if len(batch.folded) < SCAN_CHARS else self.arrays(batch)

    def scan(self, batch: TextBatch) -> tuple[np.ndarray, np.ndarray]:
        """`candidates` by one Aho-Corasick pass per view over the grams."""
        held: list[set[int]] = [set() for _ in batch.texts]  # per text: the screen sets it holds
        for view, automaton in self._automata:
            joined, starts = (batch.compact, batch.compact_starts) if view == "compact" else (batch.folded, batch.starts)
            for end, sets in automaton.iter(joined):
                held[bisect_right(starts, end) - 1].update(sets)
        always = self._by_first.get(self._sets, [])
        pairs = sorted((k, text) for text, sets in enumerate(held)
                       for k in {*always, *(k for j in sets for k in self._by_first.get(j, ()))} if self._rest[k] <= sets)
        return np.array([k for k, _ in pairs], dtype=np.int64), np.array([text for _, text in pairs], dtype=np.int64)

    def arrays(self, batch: TextBatch) -> tuple[np.ndarray, np.ndarray]:
        """`candidates` by array operations over the whole batch."""
        views = {"folded": (batch.folded_codes, np.asarray(batch.starts)),
                 "compact": (batch.compact_codes, np.asarray(batch.compact_starts))}
        found = []  # (screen sets, their texts)
        bits = np.uint32(self._bits)
        for view, slot, singles, single_sets, starting, lengths in self._views:
            codes, starts = views[view]
            slots = slot[codes]
            at = np.flatnonzero((slots - np.uint16(1)) < singles)  # slots 1 … singles (0 wraps round)
            found.append(single_sets.expand(slots[at], np.searchsorted(starts, at, side="right") - 1))
            if not lengths:
                continue
            slots = np.concatenate([slots, np.zeros(GRAM, dtype=np.uint16)]).astype(np.uint32)
            pairs = _filter_index(slots[:-1] << bits | slots[1:])  # the pair of slots at each position, hashed
            start_at = np.flatnonzero(starting[pairs[:len(codes)]])
            for length, filters, keys, sets in lengths:
                at = start_at
                for offset, pair_filter in enumerate(filters):
                    at = at[pair_filter[pairs[at + offset]]]
                packed = np.zeros(at.size, dtype=np.uint64)
                for offset in range(length):
                    packed = packed << np.uint64(bits) | slots[at + offset]
                rows = np.minimum(np.searchsorted(keys, packed), len(keys) - 1)
                held = keys[rows] == packed
                found.append(sets.expand(rows[held], np.searchsorted(starts, at[held], side="right") - 1))
        sets, texts = (np.concatenate(axis) for axis in zip(*found)) if found else (np.zeros(0, np.int64),) * 2
        # screen set × text, eight texts to a byte; the last set is held by every text
        held = np.zeros((self._sets + 1, -(-len(batch) // 8)), dtype=np.uint8)
        held[-1] = np.packbits(np.ones(len(batch), dtype=bool), bitorder="little")
        np.bitwise_or.at(held, (sets, texts >> 3), (1 << (texts & 7)).astype(np.uint8))
        passes = held[self._columns[:, 0]]  # regex × text, packed
        for column in self._columns.T[1:]:
            passes &= held[column]
        regexes, octets = np.nonzero(passes)
        rows, offsets = np.nonzero(np.unpackbits(passes[regexes, octets][:, None], axis=1, bitorder="little"))
        return regexes[rows], octets[rows] * 8 + offsets


_FILTER_BITS = 18  # a pair filter: 2**18 flags (256 KiB), one per hashed pair of slots


def _filter_index(pairs: np.ndarray) -> np.ndarray:
    """A pair filter's flag per pair of slots (a multiplicative hash: distinct pairs may share one)."""
    return (pairs * np.uint32(0x9E3779B1)) >> np.uint32(32 - _FILTER_BITS)


def _pair_filter(pairs: np.ndarray) -> np.ndarray:
    """The flags of the given pairs of slots set (a superset test: a shared flag only lets more through)."""
    flags = np.zeros(1 << _FILTER_BITS, dtype=bool)
    flags[_filter_index(pairs.astype(np.uint32))] = True
    return flags


class _Rows:
    """Lists of integers, one per row, flattened for vectorised look-ups."""

    def __init__(self, rows: list[list[int]]) -> None:
        self._start = np.cumsum([0, *map(len, rows)])
        self._flat = np.array([value for row in rows for value in row], dtype=np.int64)

    def expand(self, rows: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every value of the given rows, each with its row's label."""
        counts = self._start[rows + 1] - self._start[rows]
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return self._flat[np.repeat(self._start[rows], counts) + offsets], np.repeat(labels, counts)


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


# characters found in most chat turns (function words, chat particles, digits) and clause punctuation:
# poor screens
_COMMON = frozenset("的一是不了在有人我他这个们来上大为和到说时要就出会可也你您对能子那得下自之过发后作"
                    "里用道行所然家事成多么去都现当没动看定天还好小些样想从只以把给吗呢吧啊哦亲哈嗯呀"
                    "0123456789")
_PUNCTUATION = frozenset("，。！？、；：,.!?~")


def _rate(char: str) -> float:
    """A rough chance that a position of a chat turn holds ``char``: the screens' cost model."""
    if char in _COMMON:
        return 0.02
    if char in _PUNCTUATION:
        return 0.05
    return 0.002 if "\u3400" <= char <= "\u9fff" else 0.01


def screen_cost(strings: Iterable[str]) -> float:
    """Expected occurrences per position of a set's strings (lower: a sharper screen; "" is everywhere)."""
    return sum(map(_string_cost, strings))


@lru_cache(maxsize=1 << 16)
def _string_cost(string: str) -> float:
    return math.prod(map(_rate, string))


_REPEATS = tuple(getattr(_constants, name) for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
                 if hasattr(_constants, name))
_ZERO_WIDTH = (_constants.AT, _constants.ASSERT, _constants.ASSERT_NOT)
_MAX_RANGE = 512  # a wider character class says nothing useful
_LIMIT = 1024  # strings a cross product may reach before it is cut to shorter strings
_POWER = 4  # X{n,m}: at most X^4 is spelled out
SCREEN_COST = 1e-3  # besides its sharpest set, a regex is screened on each set at most this `screen_cost`
GRAM = 5  # screen strings are cut to their sharpest GRAM characters (packed into one integer)
SCAN_CHARS = 4096  # a batch shorter than this is screened by an automaton pass


class _Facts(NamedTuple):
    """What every match of a part of a pattern looks like."""

    exact: frozenset[str] | None  # the strings it matches, when few and known
    prefix: frozenset[str]  # it starts with one of these ({""}: nothing known)
    suffix: frozenset[str]  # it ends with one of these
    factors: frozenset[frozenset[str]]  # it holds a string of each set (no set holds "")


_NOTHING_KNOWN = frozenset({""})
_ANYTHING = _Facts(None, _NOTHING_KNOWN, _NOTHING_KNOWN, frozenset())


def _exactly(strings: Iterable[str]) -> _Facts:
    strings = frozenset(strings)
    return _Facts(strings, strings, strings, frozenset() if "" in strings else frozenset({strings}))


@lru_cache(maxsize=4096)  # a reload re-reads mostly the same patterns
def screen_sets(pattern: re.Pattern[str]) -> tuple[frozenset[str], ...]:
    """The sets a regex is screened on: the sharpest of its necessary factor sets, and the others that
    are sharp too (each costs a bit), each string cut to its sharpest `GRAM` characters."""
    factors = necessary_factors(pattern)
    chosen = factors[:1] + [strings for strings in factors[1:] if screen_cost(strings) <= SCREEN_COST]
    return tuple(frozenset(map(_sharpest_gram, strings)) for strings in chosen)


def _sharpest_gram(string: str) -> str:
    width = min(len(string), GRAM)
    return min((string[i:i + width] for i in range(len(string) - width + 1)), key=lambda g: (screen_cost([g]), g))


def necessary_factors(pattern: re.Pattern[str]) -> list[frozenset[str]]:
    """Sets of strings of which every match of ``pattern`` holds at least one each, sharpest first
    (``你(是|也)傻`` → {你是傻, 你也傻}, …; ``你[^，]{0,4}都不会`` → {都不会}, {你}, …), derived from the
    parsed pattern: literals, small classes, alternations and bounded repeats are spelled out, a
    product too large is cut at its ends (the strings across each join are kept), and anything else
    (wide classes, back-references, optional parts) separates factors. Empty when nothing can be said
    (a case-insensitive pattern)."""
    if pattern.flags & re.IGNORECASE:
        return []
    factors = _sequence(_parser.parse(pattern.pattern, pattern.flags)).factors
    return sorted(factors, key=lambda strings: (screen_cost(strings), sorted(strings)))


def _sequence(items) -> _Facts:
    facts = _exactly(_NOTHING_KNOWN)
    for op, argument in items:
        facts = _then(facts, _item(op, argument))
    return facts


def _item(op, argument) -> _Facts:
    if op is _constants.LITERAL:
        return _exactly({chr(argument)})
    if op is _constants.IN:
        chars = _class(argument)
        return _exactly(chars) if chars and len(chars) <= _LIMIT else _ANYTHING
    if op in _REPEATS:
        low, high, sub = argument
        return _repeat(low, high, _sequence(sub))
    if op is _constants.SUBPATTERN:
        _, add_flags, _, sub = argument
        return _ANYTHING if add_flags & _constants.SRE_FLAG_IGNORECASE else _sequence(sub)
    if op is getattr(_constants, "ATOMIC_GROUP", None):
        return _sequence(argument)
    if op is _constants.BRANCH:
        return _either([_sequence(alternative) for alternative in argument[1]])
    if op in _ZERO_WIDTH:  # anchors and look-arounds consume nothing
        return _exactly(_NOTHING_KNOWN)
    return _ANYTHING  # any character, categories, back-references, conditionals


def _then(first: _Facts, second: _Facts) -> _Facts:
    """The facts of ``first`` followed directly by ``second``."""
    if first.exact is not None and second.exact is not None and len(first.exact) * len(second.exact) <= _LIMIT:
        return _exactly(a + b for a in first.exact for b in second.exact)
    prefix = first.prefix if first.exact is None else _join(first.exact, second.prefix, whole="left")
    suffix = second.suffix if second.exact is None else _join(first.suffix, second.exact, whole="right")
    across = _join(first.suffix, second.prefix)  # the strings across the join
    factors = first.factors | second.factors | ({across} if "" not in across else set())
    return _Facts(None, prefix, suffix, factors)


def _join(left: frozenset[str], right: frozenset[str], whole: str = "") -> frozenset[str]:
    """The sharpest set of at most `_LIMIT` strings ``l[-i:] + r[:j]`` (``l`` in ``left``, ``r`` in
    ``right``, ``i`` and ``j`` up to `GRAM`): one of them occurs wherever some ``l`` is directly
    followed by some ``r``. ``whole`` keeps one side uncut."""
    ends = [left] if whole == "left" else [_NOTHING_KNOWN, *(frozenset({s[-i:] for s in left})
                                                            for i in range(1, min(GRAM, max(map(len, left))) + 1))]
    starts = [right] if whole == "right" else \
        [frozenset({s[:j] for s in right}) for j in range(min(GRAM, max(map(len, right))) + 1)]
    end_costs, start_costs = [screen_cost(e) for e in ends], [screen_cost(s) for s in starts]
    i, j = min(((i, j) for i, e in enumerate(ends) for j, s in enumerate(starts) if len(e) * len(s) <= _LIMIT),
               key=lambda ij: (end_costs[ij[0]] * start_costs[ij[1]], -ij[0] - ij[1]))
    return frozenset(a + b for a in ends[i] for b in starts[j])


def _either(alternatives: list[_Facts]) -> _Facts:
    exact = [facts.exact for facts in alternatives]
    if all(strings is not None for strings in exact) and sum(map(len, exact)) <= _LIMIT:
        return _exactly(frozenset().union(*exact))
    prefix = _cut(frozenset().union(*(facts.prefix for facts in alternatives)), keep_start=True)
    suffix = _cut(frozenset().union(*(facts.suffix for facts in alternatives)), keep_start=False)
    sharpest = [min(facts.factors, key=screen_cost) if facts.factors else None for facts in alternatives]
    factors = frozenset({frozenset().union(*sharpest)}) if all(sharpest) else frozenset()
    return _Facts(None, prefix, suffix, factors)


def _cut(strings: frozenset[str], keep_start: bool) -> frozenset[str]:
    """``strings`` cut to their first (or last) n characters, n as large as `_LIMIT` allows."""
    length = max(map(len, strings))
    while len(strings) > _LIMIT:
        length -= 1
        strings = frozenset(s[:length] if keep_start else s[max(0, len(s) - length):] for s in strings)
    return strings


def _repeat(low: int, high: int, facts: _Facts) -> _Facts:
    if facts.exact is not None and high <= _POWER:
        strings, power = set(), {""}
        for count in range(high + 1):
            if count >= low:
                strings |= power
            if len(strings) > _LIMIT or len(power) > _LIMIT:
                break
            power = {p + x for p in power for x in facts.exact} if count < high else power
        else:
            return _exactly(strings)
    if low == 0:
        return _ANYTHING
    power = facts
    for _ in range(min(low, _POWER) - 1):
        power = _then(power, facts)
    if low == high and low <= _POWER:
        return power
    return _Facts(None, power.prefix, facts.suffix, power.factors)


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
