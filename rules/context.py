"""Context stages: pure functions deciding whether a rule hit counts.

A naive lexicon flags 第一次, 不是最好 and a customer's own words. Each stage here looks at
one kind of context and returns the reason a hit is suppressed, or ``None``; the detector
runs them in order (role → exception → negation → quote) and keeps the first reason, so
an explanation says exactly why a hit did not count.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

from qa_engine.lexicons import Lexicons
from qa_engine.schema import Conversation, Role
from qa_engine.text import TextView, fold
from rules.pack import ExceptionSpec, Rule

_CLAUSE_END = re.compile(r"[，。！？；：、,!?;:\n]")
_WINDOW = 12


@dataclass
class TurnContext:
    """What the stages may look at for one turn; earlier customer turns folded lazily."""

    conversation: Conversation
    index: int
    view: TextView
    lexicons: Lexicons
    _customer_text: str | None = field(default=None, init=False)
    _exception_spans: dict[int, list[tuple[int, int]]] = field(default_factory=dict, init=False)
    _clause_ends: list[int] | None = field(default=None, init=False)

    @property
    def role(self) -> Role:
        return self.conversation.turns[self.index].role

    def exception_spans(self, exception: ExceptionSpec) -> list[tuple[int, int]]:
        """Where an exception phrase or pattern occurs in the turn (original offsets), found once per
        turn: a long turn with many hits of one rule searches its text once, not once a hit."""
        key = id(exception)
        if key not in self._exception_spans:
            compact = self.view.compact
            if exception.phrase is not None:
                phrase = fold(exception.phrase)
                spans = []
                position = compact.find(phrase)
                while position >= 0:
                    spans.append((position, position + len(phrase)))
                    position = compact.find(phrase, position + 1)
            else:
                spans = [m.span() for m in re.finditer(exception.pattern or "", compact) if m.end() > m.start()]
            self._exception_spans[key] = [self.view.compact_to_original(*span) for span in spans]
        return self._exception_spans[key]

    def clause_before(self, position: int) -> str:
        """The folded text from the start of the clause holding ``position`` up to it."""
        if self._clause_ends is None:
            self._clause_ends = [m.end() for m in _CLAUSE_END.finditer(self.view.folded)]
        ends = self._clause_ends
        index = bisect_right(ends, position) - 1
        return self.view.folded[ends[index] if index >= 0 else 0:position]

    def earlier_customer_text(self) -> str:
        if self._customer_text is None:
            self._customer_text = "\n".join(
                fold(turn.text) for turn in self.conversation.turns[: self.index] if turn.role is Role.CUSTOMER
            )
        return self._customer_text


def role_stage(rule: Rule, start: int, end: int, ctx: TurnContext) -> str | None:
    """Only the roles a rule names can violate it (a customer saying 全网最好 is no violation)."""
    return None if ctx.role in rule.roles else f"role: {ctx.role.value} speech is outside this rule"


def exception_stage(rule: Rule, start: int, end: int, ctx: TurnContext) -> str | None:
    """A hit inside an occurrence of one of the rule's exception phrases or patterns."""
    for exception in rule.exceptions:
        if any(orig_start <= start and end <= orig_end for orig_start, orig_end in ctx.exception_spans(exception)):
            return f"exception: {exception.reason}"
    return None


def negation_stage(rule: Rule, start: int, end: int, ctx: TurnContext) -> str | None:
    """A negation cue right before the hit in the same clause (不是最好, 不能保证), or a refused
    verb of saying or promising anywhere earlier in it (我们不能说自己是第一)."""
    if not rule.negatable:
        return None
    clause = ctx.clause_before(start)
    found = ctx.lexicons.negation_before.search(fold(clause[-_WINDOW:]))
    if found:
        return f"negation: preceded by {found.group()!r}"
    scope = ctx.lexicons.negation_scope.search(fold(clause))
    return f"negation: in the scope of {scope.group()!r} earlier in the clause" if scope else None


def quote_stage(rule: Rule, start: int, end: int, ctx: TurnContext) -> str | None:
    """The agent repeating the customer's own words, in quotation marks or after 您说."""
    original = ctx.view.original
    quoted = any(
        (opening := original.rfind(marks[0], 0, start)) >= 0
        and original.find(marks[1], end) >= 0
        and marks[1] not in original[opening + 1:start]
        for marks in ctx.lexicons.quote.marks
    )
    if not quoted:
        before = fold(_CLAUSE_END.split(original[max(0, start - _WINDOW):start])[-1])
        quoted = ctx.lexicons.quote_cues.first(before) is not None  # 您提到的销量第一: cue earlier in the clause
    if quoted and fold(original[start:end]) in ctx.earlier_customer_text():
        return "quote: the agent repeats the customer's words"
    return None


STAGES = (role_stage, exception_stage, negation_stage, quote_stage)


def suppression(rule: Rule, start: int, end: int, ctx: TurnContext, stages: Sequence = STAGES) -> str | None:
    """The first stage's reason for not counting the hit, or ``None`` if it counts."""
    for stage in stages:
        reason = stage(rule, start, end, ctx)
        if reason is not None:
            return reason
    return None
