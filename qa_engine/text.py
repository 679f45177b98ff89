"""Text normalisation with offset maps (floor: qa_engine; no I/O, no Ray, no HTTP).

Agents dodge keyword filters with traditional characters (全網最好), full-width forms
(ＮＯ．１), zero-width characters, separators between characters (全 网 最 好, 全-网-最-好)
and pinyin or homophones (全网zui好). Matching therefore runs on normalised *views* of a
text, and every view keeps an `OffsetMap` back to the original, so a finding always cites
the characters the agent actually typed (the flashtext lesson: never lose the offsets).

Views, each derived from the previous one:

- ``folded``: one character for one character (so offsets are the identity): NFKC
  compatibility forms, lower case, traditional→simplified (OpenCC ``t2s``, per character),
  zero-width and other invisible characters turned into spaces.
- ``compact``: ``folded`` with runs of spaces and symbols removed (``.`` between two digits
  is kept, so ``99.9%`` survives). Clause punctuation (，。！？；：、) is kept, so words in
  different clauses never join.
- ``phonetic`` (built by `PhoneticFolder` for a given lexicon): every character that sounds
  like a lexicon character becomes that sound's representative, and runs of Latin letters
  that spell such sounds in pinyin (``zui``) become the representatives too.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache

import opencc
from pypinyin.pinyin_dict import pinyin_dict

_INVISIBLE = "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\ufeff"
# Blocks whose compatibility forms are folded: full-width ASCII, CJK compatibility
# ideographs and Kangxi radicals (look-alikes of ordinary characters), enclosed numbers,
# general punctuation (odd spaces), CJK symbols.
_NFKC_RANGES = ((0x2000, 0x206F), (0x2460, 0x24FF), (0x2E80, 0x2FDF), (0x3000, 0x303F),
                (0xF900, 0xFAFF), (0xFE30, 0xFE6F), (0xFF00, 0xFFEF), (0x2F800, 0x2FA1F))
_CJK_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF))

# symbols and emoji count as separators too (最✨好, 全👍网): the arrows, dingbats, geometric shapes,
# misc symbols and the emoji planes, variation selectors and skin-tone modifiers
_SEPARATOR_RUN = re.compile(r"[\s\-_*·•~|/\\+=#@^`'\"<>()\[\]{}【】（）「」『』〈〉《》“”‘’…—."
                            "\u2190-\u21ff\u2300-\u23ff\u25a0-\u27bf\u2b00-\u2bff\ufe00-\ufe0f"
                            "\U0001f000-\U0001faff]+")
LATIN_RUN = re.compile(r"[a-z]+")  # a run of (folded) Latin letters: pinyin candidates
_TONE_MARKS = str.maketrans("āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜüńňǹḿ", "aaaaeeeeiiiioooouuuuvvvvvnnnm")


class OffsetMap:
    """Maps spans of a derived string back to the string it was derived from.

    Built from a sorted list of edits; the derived string is a sequence of *segments*,
    each either copied one-to-one from the source or a replacement block standing for a
    source span (e.g. ``zui`` → one character). Look-ups are a bisection.
    """

    __slots__ = ("_starts", "_segments")

    def __init__(self, segments: list[tuple[int, int, int, int]]) -> None:
        # (dst_start, src_start, dst_len, src_len); dst_len == src_len and not a block → copy
        self._segments = segments
        self._starts = [seg[0] for seg in segments]

    @staticmethod
    def apply(source: str, edits: list[tuple[int, int, str]]) -> tuple[str, OffsetMap | None]:
        """Apply ``(src_start, src_end, replacement)`` edits (sorted, disjoint).

        Returns the derived string and its map, or ``None`` for the map when no edit applied.
        """
        if not edits:
            return source, None
        parts: list[str] = []
        segments: list[tuple[int, int, int, int]] = []
        pos = dst = 0
        for start, end, replacement in edits:
            if start > pos:
                parts.append(source[pos:start])
                segments.append((dst, pos, start - pos, -1))
                dst += start - pos
            for char in replacement:
                # every replacement character stands for the whole replaced span
                segments.append((dst, start, 1, end - start))
                parts.append(char)
                dst += 1
            pos = end
        if pos < len(source):
            parts.append(source[pos:])
            segments.append((dst, pos, len(source) - pos, -1))
        return "".join(parts), OffsetMap(segments)

    def to_source(self, start: int, end: int) -> tuple[int, int]:
        """Source span ``[s, e)`` covering derived span ``[start, end)`` (``end > start``)."""
        return self._source_start(start), self._source_end(end - 1)

    def _segment(self, index: int) -> tuple[int, int, int, int]:
        return self._segments[bisect_right(self._starts, index) - 1]

    def _source_start(self, index: int) -> int:
        dst, src, _, block_len = self._segment(index)
        return src if block_len >= 0 else src + index - dst

    def _source_end(self, last: int) -> int:
        dst, src, _, block_len = self._segment(last)
        return src + block_len if block_len >= 0 else src + last - dst + 1


@dataclass(frozen=True, slots=True)
class TextView:
    """An original text with its folded and compact views."""

    original: str
    folded: str
    compact: str
    compact_map: OffsetMap | None

    def compact_to_original(self, start: int, end: int) -> tuple[int, int]:
        """Original span of a compact-view span (folded offsets equal original ones)."""
        return (start, end) if self.compact_map is None else self.compact_map.to_source(start, end)


@lru_cache(maxsize=1)
def fold_table() -> dict[int, str]:
    """The ``str.translate`` table behind the folded view; built once per process."""
    table: dict[int, str] = {}
    for low, high in _NFKC_RANGES:
        for code in range(low, high + 1):
            folded = unicodedata.normalize("NFKC", chr(code)).lower()
            if len(folded) == 1 and folded != chr(code):
                table[code] = " " if folded.isspace() else folded
    for code in range(ord("A"), ord("Z") + 1):
        table[code] = chr(code).lower()
    for char in _INVISIBLE:
        table[ord(char)] = " "
    chars = [chr(code) for low, high in _CJK_RANGES for code in range(low, high + 1)]
    # newline-separated so OpenCC converts characters, never phrases across neighbours
    simplified = opencc.OpenCC("t2s").convert("\n".join(chars)).split("\n")
    for char, simple in zip(chars, simplified, strict=True):
        if len(simple) == 1 and simple != char:
            table[ord(char)] = simple
    for source, target in list(table.items()):
        # full-width traditional forms etc.: fold the folded result once more
        table[source] = table.get(ord(target), target) if len(target) == 1 else target
    return table


def _separator_edits(folded: str) -> list[tuple[int, int, str]]:
    edits = []
    for match in _SEPARATOR_RUN.finditer(folded):
        start, end = match.span()
        if (match.group() == "." and 0 < start and end < len(folded)
                and folded[start - 1].isdigit() and folded[end].isdigit()):
            continue  # decimal point: 99.9%
        edits.append((start, end, ""))
    return edits


@lru_cache(maxsize=64)
def normalise(text: str) -> TextView:
    """Build the folded and compact views of ``text``.

    Cached for the last few dozen texts: the detectors of one conversation share its views
    (a cache sized to one conversation, so repeated texts across a month are not a shortcut).

    Example:
        >>> view = normalise("全 網-最\u200b好")
        >>> view.compact
        '全网最好'
        >>> view.compact_to_original(0, 4)
        (0, 7)
    """
    folded = text.translate(fold_table())
    compact, compact_map = OffsetMap.apply(folded, _separator_edits(folded))
    return TextView(text, folded, compact, compact_map)


def fold(text: str) -> str:
    """The compact view alone, e.g. for normalising lexicon terms the way text is."""
    return normalise(text).compact


def syllables(char: str) -> tuple[str, ...]:
    """Toneless pinyin readings of one character (empty for non-Chinese characters)."""
    readings = pinyin_dict.get(ord(char))
    if not readings:
        return ()
    return tuple(dict.fromkeys(r.translate(_TONE_MARKS) for r in readings.split(",")))


class PhoneticFolder:
    """Builds the phonetic view for a lexicon's characters.

    Only the sounds of the lexicon's characters matter: each such sound gets one
    representative character, every character whose first reading is that sound maps to
    it, and Latin runs that split wholly into those sounds are replaced by them.
    """

    def __init__(self, key_chars: str) -> None:
        self.representative: dict[str, str] = {}
        for char in sorted(set(key_chars)):
            reading = syllables(char)
            if reading:
                self.representative.setdefault(reading[0], char)
        self._table: dict[int, str] = {}
        for code, readings in pinyin_dict.items():
            first = readings.split(",")[0].translate(_TONE_MARKS)
            if first in self.representative:
                self._table[code] = self.representative[first]
        self._longest = max((len(s) for s in self.representative), default=0)

    def __call__(self, compact: str) -> tuple[str, OffsetMap | None]:
        """Phonetic view of a compact text and its map back to the compact text."""
        edits: list[tuple[int, int, str]] = []
        for match in LATIN_RUN.finditer(compact):
            split = self._split(match.group())
            if split:
                pos = match.start()
                for syllable in split:
                    edits.append((pos, pos + len(syllable), self.representative[syllable]))
                    pos += len(syllable)
        derived, offsets = OffsetMap.apply(compact, edits)
        return derived.translate(self._table), offsets

    def _split(self, run: str) -> list[str] | None:
        """Split a Latin run wholly into known syllables (longest first, backtracking)."""
        if len(run) > 4 * self._longest + 8:
            return None
        best: dict[int, list[str] | None] = {len(run): []}
        for start in range(len(run) - 1, -1, -1):
            best[start] = None
            for size in range(min(self._longest, len(run) - start), 0, -1):
                piece = run[start:start + size]
                rest = best[start + size]
                if piece in self.representative and rest is not None:
                    best[start] = [piece, *rest]
                    break
        return best[0]
