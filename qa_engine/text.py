"""Text normalisation with offset maps (floor: qa_engine; no I/O, no Ray, no HTTP).

Agents dodge keyword filters with traditional characters (全網最好), full-width forms
(ＮＯ．１), zero-width characters, separators between characters (全 网 最 好, 全-网-最-好)
and pinyin or homophones (全网zui好). Matching therefore runs on normalised *views* of a
text, and every view keeps an `OffsetMap` back to the original, so a finding always cites
the characters the agent actually typed (the flashtext lesson: never lose the offsets).

Views, each derived from the previous one:

- ``folded``: one character for one character (so offsets are the identity): NFKC
  compatibility forms, lower case, traditional→simplified (OpenCC ``t2s``, per character),
  Cyrillic and Greek look-alikes of Latin letters read as those letters, zero-width and other
  invisible characters turned into spaces.
- ``compact``: ``folded`` with runs of spaces and symbols removed (``.`` between two digits
  is kept, so ``99.9%`` survives). Clause punctuation (，。！？；：、) is kept, so words in
  different clauses never join.
- ``phonetic`` (built by `PhoneticFolder` for a given lexicon): every character that sounds
  like a lexicon character becomes that sound's representative, runs of Latin letters
  that spell such sounds in pinyin (``zui``) become the representatives too, and so does a
  digit, read as its numeral (``唯1``, ``独1无2``); a 💯 is skipped there, like any other emoji.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import opencc
from pypinyin.pinyin_dict import pinyin_dict

_INVISIBLE = "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\ufeff"
# Blocks whose compatibility forms are folded: full-width ASCII, CJK compatibility
# ideographs and Kangxi radicals (look-alikes of ordinary characters), enclosed numbers,
# general punctuation (odd spaces), CJK symbols, letter-like symbols and mathematical
# alphanumerics (ℕ𝐨.𝟏 → no.1), circled ideographs (㊀ → 一).
_NFKC_RANGES = ((0x2000, 0x206F), (0x2100, 0x214F), (0x2460, 0x24FF), (0x2E80, 0x2FDF), (0x3000, 0x303F),
                (0x3200, 0x32FF), (0xF900, 0xFAFF), (0xFE30, 0xFE6F), (0xFF00, 0xFFEF), (0x1D400, 0x1D7FF),
                (0x2F800, 0x2FA1F))
# Blocks of digits drawn as symbols, read as the digit they stand for: Roman numerals (第Ⅰ), circled and
# parenthesised digits (❶, ➀, ⓵, ⑴, 🄂) — their compatibility forms are longer than one character or none
_DIGIT_RANGES = ((0x2150, 0x218F), (0x2460, 0x24FF), (0x2776, 0x2793), (0x1F100, 0x1F10F))
_CJK_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF))
# Cyrillic and Greek letters that look like Latin ones (nо.1 with a Cyrillic о, zuі): read as those letters
_CONFUSABLES = dict(zip("аеорсухіјѕһԁԛԝАВЕКМНОРСТХІЈЅУοΟνκρτχΑΒΕΗΙΚΜΝΟΡΤΧΥΖ",
                        "aeopcyxijshdqwabekmhopctxijsyoovkptxabehikmnoptxyz", strict=True))

# symbols and emoji count as separators too (最✨好, 全👍网): the arrows, dingbats, geometric shapes,
# misc symbols and the emoji planes, variation selectors and skin-tone modifiers — except 💯, which says
# 百分百 (💯后天到): the compact view keeps it for the regexes, the phonetic view skips it (最💯好 is 最好)
HUNDRED = "\U0001f4af"
_SEPARATOR = re.compile(r"[\s\-_*·•~|/\\+=#@^`'\"<>()\[\]{}【】（）「」『』〈〉《》“”‘’…—."
                        "\u2190-\u21ff\u2300-\u23ff\u25a0-\u27bf\u2b00-\u2bff\ufe00-\ufe0f"
                        "\U0001f000-\U0001f4ae\U0001f4b0-\U0001faff]")
_SEPARATOR_RUN = re.compile(_SEPARATOR.pattern + "+")
LATIN_RUN = re.compile(r"[a-z]+")  # a run of (folded) Latin letters: pinyin candidates
_TONED, _TONELESS = "āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜüńňǹḿ", "aaaaeeeeiiiioooouuuuvvvvvnnnm"
_TONE_MARKS = str.maketrans(_TONED, _TONELESS)
#: the phonetic view reads a digit as its Chinese numeral (唯1, 独1无2); the matcher keeps only hits whose
#: digits stand alone, never digits of a longer number
NUMERALS = dict(zip("0123456789", "零一二三四五六七八九", strict=True))
BOUNDARY = "\x00"  # joins texts normalised together; a NUL typed in a text folds to a space
CODE_POINTS = 0x110000
_SPLIT_MEMO = 65536  # Latin runs remembered per phonetic folder


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


class TextView:
    """An original text with its folded and compact views.

    ``folded`` has the original's offsets; compact offsets map back through ``index`` (compact
    position + ``offset`` → original position + ``base``), shared by every text normalised
    together and read only for hits.
    """

    __slots__ = ("original", "folded", "compact", "_index", "_offset", "_base")

    def __init__(self, original: str, folded: str, compact: str, index: Sequence[int] | np.ndarray | None = None,
                 offset: int = 0, base: int = 0) -> None:
        self.original, self.folded, self.compact = original, folded, compact
        self._index, self._offset, self._base = index, offset, base

    def compact_to_original(self, start: int, end: int) -> tuple[int, int]:
        """Original span of a compact-view span (``end > start``)."""
        if self._index is None:
            return start, end
        return (int(self._index[self._offset + start]) - self._base,
                int(self._index[self._offset + end - 1]) + 1 - self._base)


@lru_cache(maxsize=1)
def fold_table() -> dict[int, str]:
    """Code point → folded character, for the code points that fold: the ``str.translate`` table of
    `normalise` and the source of `char_tables`; built once per process."""
    table: dict[int, str] = {}
    for low, high in _NFKC_RANGES:
        for code in range(low, high + 1):
            folded = unicodedata.normalize("NFKC", chr(code)).lower()
            if len(folded) == 1 and folded != chr(code):
                table[code] = " " if folded.isspace() else folded
    for low, high in _DIGIT_RANGES:
        for code in range(low, high + 1):
            value = unicodedata.numeric(chr(code), None)
            if code not in table and value is not None and value == int(value) and 0 <= value <= 9:
                table[code] = str(int(value))
    for code in range(ord("A"), ord("Z") + 1):
        table[code] = chr(code).lower()
    for toned, toneless in zip(_TONED + _TONED.upper(), _TONELESS + _TONELESS, strict=True):
        table[ord(toned)] = toneless  # tone-marked pinyin (最dī价) reads as plain pinyin
    for char in _INVISIBLE + BOUNDARY:
        table[ord(char)] = " "
    for char, latin in _CONFUSABLES.items():
        table[ord(char)] = latin
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


@dataclass(frozen=True, slots=True)
class CharTables:
    """One look-up per code point for every view: built once per process, indexed by numpy."""

    fold: np.ndarray  # uint32: code point → folded code point
    separator: np.ndarray  # bool, by folded code point: dropped from the compact view
    digit: np.ndarray  # bool, by folded code point: a ``.`` between two decimal digits is kept (99.9%)


@lru_cache(maxsize=1)
def char_tables() -> CharTables:
    fold = np.arange(CODE_POINTS, dtype=np.uint32)
    for code, target in fold_table().items():
        fold[code] = ord(target)
    fold[ord(BOUNDARY)] = ord(BOUNDARY)  # the joiner survives; typed NULs were replaced before
    every = from_code_points(np.arange(CODE_POINTS, dtype=np.uint32))
    separator = np.zeros(CODE_POINTS, dtype=bool)
    separator[[match.start() for match in _SEPARATOR.finditer(every)]] = True
    separator[ord(BOUNDARY)] = False
    digit = np.zeros(CODE_POINTS, dtype=bool)
    digit[[match.start() for match in re.finditer(r"\d", every)]] = True
    return CharTables(fold, separator, digit)


def code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def from_code_points(codes: np.ndarray) -> str:
    return codes.tobytes().decode("utf-32-le", "surrogatepass")


class TextBatch:
    """Several texts normalised together: the folded and compact views of the texts joined by
    `BOUNDARY` (one pass of table look-ups and one automaton pass serve them all — per-text
    overhead is what dominates short chat turns), with each text's start in both. A batch of one
    text takes `normalise`'s views instead (the same views, without the numpy set-up)."""

    __slots__ = ("texts", "folded", "folded_codes", "compact", "compact_codes", "starts", "compact_starts", "_index",
                 "_views")

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = list(texts)
        self._views: dict[int, TextView] = {}
        if len(self.texts) == 1:  # one text (a live draft): its single-text views, no numpy set-up
            view = self._views[0] = normalise(self.texts[0])
            self.folded, self.compact, self._index = view.folded, view.compact, view._index
            self.folded_codes = code_points(self.folded)
            self.compact_codes = self.folded_codes if view._index is None else code_points(self.compact)
            self.starts = self.compact_starts = [0]
            return
        joined = BOUNDARY.join(self.texts)
        if joined.count(BOUNDARY) != len(self.texts) - 1:
            joined = BOUNDARY.join(text.replace(BOUNDARY, " ") for text in self.texts)
        tables = char_tables()
        self.folded_codes = tables.fold[code_points(joined)]
        keep = ~tables.separator[self.folded_codes]
        dots = np.flatnonzero(self.folded_codes[1:-1] == ord(".")) + 1
        keep[dots[tables.digit[self.folded_codes[dots - 1]] & tables.digit[self.folded_codes[dots + 1]]]] = True
        self.folded = from_code_points(self.folded_codes)
        self.starts = _starts(self.folded_codes)
        if keep.all():
            self._index, self.compact, self.compact_starts = None, self.folded, self.starts
            self.compact_codes = self.folded_codes
        else:
            self._index = np.flatnonzero(keep)
            self.compact_codes = self.folded_codes[self._index]
            self.compact, self.compact_starts = from_code_points(self.compact_codes), _starts(self.compact_codes)

    def __len__(self) -> int:
        return len(self.texts)

    def text_at(self, position: int) -> int:
        """The text holding a joined compact-view position."""
        return bisect_right(self.compact_starts, position) - 1

    def to_original(self, text: int, start: int, end: int) -> tuple[int, int]:
        """The span in text ``text`` of a joined compact-view span (``end > start``)."""
        if self._index is not None:
            start, end = int(self._index[start]), int(self._index[end - 1]) + 1
        return start - self.starts[text], end - self.starts[text]

    def view(self, text: int) -> TextView:
        """One text's views (made on demand: only texts with hits need one)."""
        if text not in self._views:
            start, compact_start = self.starts[text], self.compact_starts[text]
            folded = self.folded[start:start + len(self.texts[text])]
            compact_end = self.compact_starts[text + 1] - 1 if text + 1 < len(self.texts) else len(self.compact)
            compact = self.compact[compact_start:compact_end]
            identity = self._index is None or len(compact) == len(folded)
            self._views[text] = TextView(self.texts[text], folded, compact,
                                         None if identity else self._index, compact_start, start)
        return self._views[text]


def _starts(codes: np.ndarray) -> list[int]:
    """Where each text of a joined view starts: 0 and one past every boundary."""
    return [0, *(np.flatnonzero(codes == ord(BOUNDARY)) + 1).tolist()]


@lru_cache(maxsize=64)
def normalise(text: str) -> TextView:
    """Build the folded and compact views of ``text``.

    One text at a time (the live path, lexicon cues, model inputs) costs a ``str.translate`` and
    one regex scan — numpy's per-call overhead would dominate a short turn; `TextBatch` builds the
    same views for many texts at once (the tests hold the two equal). Cached for the last few
    dozen texts: the detectors of one conversation share its views.

    Example:
        >>> view = normalise("全 網-最\u200b好")
        >>> view.compact
        '全网最好'
        >>> view.compact_to_original(0, 4)
        (0, 7)
    """
    folded = text.translate(fold_table())
    kept: list[range] = []
    position = 0
    for match in _SEPARATOR_RUN.finditer(folded):
        start, end = match.span()
        if (match.group() == "." and 0 < start and end < len(folded)
                and folded[start - 1].isdecimal() and folded[end].isdecimal()):
            continue  # decimal point: 99.9%
        kept.append(range(position, start))
        position = end
    if not kept:
        return TextView(text, folded, folded)
    kept.append(range(position, len(folded)))
    index = [i for span in kept for i in span]
    return TextView(text, folded, "".join(folded[span.start:span.stop] for span in kept), index)


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
        self._table = np.arange(CODE_POINTS, dtype=np.uint32)
        for code, readings in pinyin_dict.items():
            first = readings.split(",")[0].translate(_TONE_MARKS)
            if first in self.representative:
                self._table[code] = ord(self.representative[first])
        for digit, numeral in NUMERALS.items():
            self._table[ord(digit)] = self._table[ord(numeral)]
        self._longest = max((len(s) for s in self.representative), default=0)
        self._splits: dict[str, tuple[str, ...] | None] = {}

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
        if HUNDRED in compact:
            edits = sorted([*edits, *((m.start(), m.end(), "") for m in re.finditer(HUNDRED, compact))])
        derived, offsets = OffsetMap.apply(compact, edits)
        return from_code_points(self._table[code_points(derived)]), offsets

    def _split(self, run: str) -> tuple[str, ...] | None:
        """`_split_run`, memoised per folder: chat repeats the same Latin runs (ok, jd, x)."""
        memo = self._splits  # replaced, never cleared in place: safe for concurrent callers
        if run in memo:
            return memo[run]
        found = self._split_run(run)
        split = None if found is None else tuple(found)
        if len(memo) >= _SPLIT_MEMO:
            self._splits = memo = {}
        memo[run] = split
        return split

    def _split_run(self, run: str) -> list[str] | None:
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
