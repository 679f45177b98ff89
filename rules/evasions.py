"""Generated evasions of pack terms: the spellings agents use to slip past a keyword list.

Used by the tests (every form of every pack term must still be caught) and by ``bench_rules.py``
(how many each matcher catches). A pack author can run it on new terms before shipping them.
"""

from __future__ import annotations

import random
from functools import lru_cache

import opencc
from pypinyin.pinyin_dict import pinyin_dict

from qa_engine.text import normalise, syllables
from rules.matcher import pinyin_initials

EMOJI_SEPARATORS = ("✨", "👍", "★", "❤️", "→")


@lru_cache(maxsize=1)
def _to_traditional() -> opencc.OpenCC:
    return opencc.OpenCC("s2t")


@lru_cache(maxsize=1)
def _by_sound() -> dict[str, tuple[str, ...]]:
    by_sound: dict[str, list[str]] = {}
    for code in pinyin_dict:
        char = chr(code)
        if 0x4E00 <= code <= 0x9FFF and normalise(char).compact == char:  # a simplified character
            by_sound.setdefault(syllables(char)[0], []).append(char)
    return {sound: tuple(chars) for sound, chars in by_sound.items()}


def evasion_forms(term: str, rng: random.Random) -> dict[str, str]:
    """Each evasion form's spelling of one Chinese term of two or more characters."""
    forms = {
        "spaces": " ".join(term),
        "symbols": "-".join(term),
        "emoji between characters": rng.choice(EMOJI_SEPARATORS).join(term),
        "zero-width": "\u200b".join(term),
        "full-width spaces": "\u3000".join(term),
        "pinyin": term[:-1] + syllables(term[-1])[0],
    }
    traditional = _to_traditional().convert(term)
    if traditional != term:
        forms["traditional"] = traditional
    if len(term) >= 3:
        forms["whole-word pinyin"] = "".join(syllables(ch)[0] for ch in term)
        index = rng.randrange(len(term))
        sound = syllables(term[index])[0]
        others = [ch for ch in _by_sound().get(sound, ()) if ch != term[index] and syllables(ch)[0] == sound]
        if others:
            forms["homophone"] = term[:index] + rng.choice(sorted(others)[:20]) + term[index + 1:]
    if initials := pinyin_initials(term):
        forms["pinyin initials"] = initials
    return forms


def evasion_cases(terms: list[str], seed: int = 7) -> list[tuple[str, str, str]]:
    """(form, term, utterance) for each Chinese term of two or more characters, in an agent's sentence."""
    rng = random.Random(seed)
    cases = []
    for term in terms:
        if len(term) < 2 or not all("\u4e00" <= ch <= "\u9fff" for ch in term) or not all(syllables(ch) for ch in term):
            continue
        for form, spelled in evasion_forms(term, rng).items():
            cases.append((form, term, f"亲，这款{spelled}哦"))
    return cases
