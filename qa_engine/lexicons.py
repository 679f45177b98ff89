"""Cue lexicons for context stages and lexical baselines (floor: qa_engine).

The cues are data (``conf/lexicons.yaml``), compiled here into Aho-Corasick automata that
run on the compact view, so a cue survives the same evasions a rule term does.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources

import ahocorasick
import yaml
from pydantic import BaseModel, ConfigDict

from qa_engine.text import fold


class CueSet:
    """A named set of phrases found on compact text with one automaton."""

    def __init__(self, phrases: list[str]) -> None:
        self.phrases = tuple(dict.fromkeys(fold(p) for p in phrases))
        self._automaton = ahocorasick.Automaton()
        for phrase in self.phrases:
            self._automaton.add_word(phrase, phrase)
        self._automaton.make_automaton()

    def first(self, compact: str) -> str | None:
        """The first cue occurring in ``compact``, or ``None``."""
        for _, phrase in self._automaton.iter(compact):
            return phrase
        return None

    def spans(self, compact: str) -> list[tuple[int, int, str]]:
        return [(end - len(p) + 1, end + 1, p) for end, p in self._automaton.iter(compact)]


class _NegationScope(BaseModel):
    cues: list[str]
    verbs: list[str]


class _Negation(BaseModel):
    cues: list[str]
    fillers: list[str]
    scope: _NegationScope


class _Quote(BaseModel):
    cues: list[str]
    marks: list[str]


class LexiconFile(BaseModel):
    """The validated lexicon file."""

    model_config = ConfigDict(frozen=True)

    version: str
    negation: _Negation
    quote: _Quote
    empathy: dict[str, list[str]]
    complaint: dict[str, list[str]]
    solution: dict[str, list[str]]
    resolution: dict[str, list[str]]
    service: dict[str, list[str]]


class Lexicons:
    """Compiled lexicons: every cue list as a `CueSet`, built once."""

    GROUPS = ("empathy", "complaint", "solution", "resolution", "service")

    def __init__(self, data: LexiconFile, digest: str = "") -> None:
        #: the declared version plus a hash of the file's bytes (as rule packs record theirs), so a cue
        #: edited without a version bump still shows in every result's provenance
        self.version = f"{data.version}+{digest[:8]}" if digest else data.version
        self.quote = data.quote
        self.resolution = data.resolution
        self._cue_sets = {(group, name): CueSet(phrases)
                          for group in self.GROUPS for name, phrases in getattr(data, group).items()}
        self.quote_cues = CueSet(data.quote.cues)
        cues, fillers, scope_cues, scope_verbs = (
            "|".join(sorted(map(re.escape, phrases), key=len, reverse=True))
            for phrases in (data.negation.cues, data.negation.fillers, data.negation.scope.cues,
                            data.negation.scope.verbs))
        #: matches at the end of the compact text preceding a negated hit
        self.negation_before = re.compile(f"(?:{cues})(?:{fillers}){{0,2}}$")
        #: a negated verb of saying or promising anywhere earlier in the hit's clause
        self.negation_scope = re.compile(f"(?:{scope_cues})(?:{fillers}){{0,2}}?(?:{scope_verbs})")

    def cues(self, group: str, name: str) -> CueSet:
        """The compiled cue set ``group.name`` (e.g. ``empathy.apology``)."""
        return self._cue_sets[(group, name)]


def load_lexicons(text: str | None = None) -> Lexicons:
    """Parse lexicon YAML text; the bundled ``conf/lexicons.yaml`` by default."""
    if text is None:
        text = resources.files("qa_engine").joinpath("conf/lexicons.yaml").read_text(encoding="utf-8")
    return Lexicons(LexiconFile.model_validate(yaml.safe_load(text)), hashlib.sha256(text.encode("utf-8")).hexdigest())
