"""Masking personal data in exported text: every hit of a rule that carries a ``mask`` spec.

Reports mask what those rules match in *every* turn (customers type their own phone
numbers) and ignore the context exceptions that excuse an agent (the shop's hotline is
still a number an export need not show). The rules are the privacy pack's, so a new kind
of personal data is masked by adding a rule, not code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from qa_engine.text import TextBatch
from rules.detector import CompiledRules
from rules.pack import MaskSpec, RuleBook, load_rulebook

MASK = "****"
_SEPARATORS = re.compile(r"[\s\-]+")


@dataclass(frozen=True, slots=True)
class MaskedSpan:
    """A span of the original text and what an export shows instead."""

    start: int
    end: int
    replacement: str
    rule_id: str


def masked(spec: MaskSpec, text: str) -> str:
    """``138 1234 5678`` → ``138****5678``; never returns more than the spec keeps."""
    text = _SEPARATORS.sub("", text)
    if spec.keep_through is not None:
        found = re.search(spec.keep_through, text)
        head = text[:found.end()] if found else ""
    else:
        head = text[:spec.keep_head]
    tail = text[len(text) - spec.keep_tail:] if spec.keep_tail else ""
    if len(head) + len(tail) >= len(text):
        return MASK
    return head + MASK + tail


class PersonalDataMasker:
    """Finds and masks personal data with the rule book's maskable rules."""

    def __init__(self, rulebook: RuleBook | None = None) -> None:
        rulebook = rulebook or load_rulebook()
        packs = tuple(pack.model_copy(update={"rules": tuple(r for r in pack.rules if r.mask is not None)})
                      for pack in rulebook.packs)
        self._compiled = CompiledRules.build(RuleBook(packs=tuple(p for p in packs if p.rules)))
        self.rule_ids = sorted(rule.id for rule in self._compiled.rulebook.rules)
        self.spans = lru_cache(maxsize=65536)(self._spans)  # findings of one turn share its text

    def _spans(self, text: str) -> tuple[MaskedSpan, ...]:
        """Non-overlapping spans to mask, longest first where hits overlap, in text order."""
        hits = sorted(self._compiled.matches(TextBatch([text])).get(0, []), key=lambda m: (-(m.end - m.start), m.start))
        kept: list[MaskedSpan] = []
        for hit in hits:
            if all(hit.end <= k.start or k.end <= hit.start for k in kept):
                kept.append(MaskedSpan(hit.start, hit.end, masked(hit.payload.mask, text[hit.start:hit.end]),
                                       hit.payload.id))
        return tuple(sorted(kept, key=lambda s: s.start))

    def mask(self, text: str) -> str:
        """The text with every personal-data span replaced."""
        out, position = [], 0
        for span in self.spans(text):
            out += [text[position:span.start], span.replacement]
            position = span.end
        out.append(text[position:])
        return "".join(out)
