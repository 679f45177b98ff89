"""The rule detector: rule packs → matchers → context stages → findings.

Reads like the spec: normalise each turn, match terms (evasions included) and regexes,
drop hits that context excuses, keep the longest of overlapping hits in a category, and
cite each survivor's rule, law and rewrite with its span in the original text.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from qa_engine.errors import ErrorCode, RulePackError
from qa_engine.findings import Finding, FindingKind, Severity
from qa_engine.lexicons import Lexicons, load_lexicons
from qa_engine.schema import Conversation, Role
from qa_engine.text import TextBatch, TextView
from rules.context import TurnContext, suppression
from rules.matcher import Match, RegexMatcher, TermMatcher
from rules.pack import BUNDLED_PACKS, Rule, RuleBook, load_rulebook, pack_files
from rules.validators import VALIDATORS

CONFIDENCE = {"literal": 1.0, "regex": 1.0, "pinyin": 0.9, "homophone": 0.8, "initials": 0.7}
_SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.MAJOR: 1, Severity.MINOR: 2}


@dataclass(frozen=True)
class CompiledRules:
    """A rule book with its matchers built; swapped whole on reload."""

    rulebook: RuleBook
    terms: TermMatcher[Rule]
    regexes: RegexMatcher[Rule]
    roles: frozenset[Role]

    @classmethod
    def build(cls, rulebook: RuleBook, screen: bool = True) -> CompiledRules:
        """``screen=False``: every regex runs on every text (the reference for tests and benchmarks)."""
        rules = rulebook.rules
        return cls(
            rulebook=rulebook,
            terms=TermMatcher((term, rule) for rule in rules for term in rule.terms),
            regexes=RegexMatcher(((spec.pattern, spec.view, VALIDATORS[spec.validator] if spec.validator else None,
                                   spec.requires, rule) for rule in rules for spec in rule.regexes), screen=screen),
            roles=frozenset(role for rule in rules for role in rule.roles),
        )

    def matches(self, batch: TextBatch) -> dict[int, list[Match[Rule]]]:
        """Raw term and regex hits by text of the batch (texts without hits left out), before any
        context stage."""
        found = self.terms.find(batch)
        for text, hits in self.regexes.find(batch).items():
            found.setdefault(text, []).extend(hits)
        return found


class RuleDetector:
    """Finds rule-pack violations in agent (and bot) turns.

    Args:
        rulebook: the packs in force.
        lexicons: negation and quote cues for the context stages.
        sources: the pack files or folders the rule book came from, re-read by `reload`
            (``None``: the bundled packs).
    """

    name = "qa.rules.v1"
    version = "1.0.0"

    def __init__(self, rulebook: RuleBook, lexicons: Lexicons | None = None,
                 sources: list[Path] | None = None) -> None:
        self.lexicons = lexicons or load_lexicons()
        self.sources = sources
        self._compiled = CompiledRules.build(rulebook)

    @property
    def rulebook(self) -> RuleBook:
        return self._compiled.rulebook

    def reload(self, check: Callable[[list[str]], None] | None = None, allow_removal: bool = False) -> RuleBook:
        """Re-read the packs from their sources and swap them in at once.

        A pack or category that disappeared (a file deleted from a watched folder, a pack's
        category changed) is refused like a malformed pack unless ``allow_removal``: its rules
        would otherwise stop being checked without anyone saying so.

        Raises:
            RulePackError: the new packs are malformed, or (E011) drop a pack or category; the
                old ones stay in force.
            ScorecardError: ``check`` refused a category of the new packs; the old ones stay in force.
        """
        compiled = CompiledRules.build(load_rulebook(self.sources))
        if not allow_removal:
            _refuse_removals(self.rulebook, compiled.rulebook, self.sources)
        if check is not None:
            check(compiled.rulebook.categories)
        self._compiled = compiled
        return self._compiled.rulebook

    def data_versions(self) -> dict[str, str]:
        return self.rulebook.versions

    @property
    def categories(self) -> list[str]:
        return self.rulebook.categories

    def watched_files(self) -> list[str]:
        """The pack files `reload` re-reads (a new file in a watched folder counts too)."""
        return [str(p) for source in (self.sources or [BUNDLED_PACKS])
                for p in (pack_files(Path(source)) if Path(source).is_dir() else [Path(source)])]

    def detect(self, conversation: Conversation) -> list[Finding]:
        return self._findings([conversation], explain=False)[0]

    def detect_many(self, conversations: Sequence[Conversation]) -> list[list[Finding]]:
        return self._findings(conversations, explain=False)

    def detect_turn(self, conversation: Conversation, index: int) -> list[Finding]:
        return self._findings([conversation], explain=False, only=index)[0]

    def explain(self, conversation: Conversation) -> list[Finding]:
        """Every hit, including those context excused, each with ``suppressed_by`` set."""
        return self._findings([conversation], explain=True)[0]

    def explain_many(self, conversations: Sequence[Conversation]) -> list[list[Finding]]:
        """`explain` of each conversation, matched in one batch."""
        return self._findings(conversations, explain=True)

    def explain_turn(self, conversation: Conversation, index: int) -> list[Finding]:
        """`explain` of turn ``index`` alone (the live path's draft, read with its context)."""
        return self._findings([conversation], explain=True, only=index)[0]

    def _findings(self, conversations: Sequence[Conversation], explain: bool,
                  only: int | None = None) -> list[list[Finding]]:
        """Findings per conversation (of turn ``only`` alone when given); every in-scope turn of
        every conversation matched in one batch."""
        compiled = self._compiled  # one rule book for the whole batch, even mid-reload
        turns = [(c, i) for c, conversation in enumerate(conversations)
                 for i, turn in enumerate(conversation.turns)
                 if (explain or turn.role in compiled.roles) and only in (None, i)]
        batch = TextBatch([conversations[c].turns[i].text for c, i in turns])
        findings: list[list[Finding]] = [[] for _ in conversations]
        for position, matches in sorted(compiled.matches(batch).items()):
            c, index = turns[position]
            findings[c].extend(self._turn_findings(conversations[c], index, batch.view(position), matches, explain))
        return findings

    def matches(self, batch: TextBatch) -> dict[int, list[Match[Rule]]]:
        """Raw term and regex hits by text, before any context stage."""
        return self._compiled.matches(batch)

    def _turn_findings(self, conversation: Conversation, index: int, view: TextView, matches: list[Match[Rule]],
                       explain: bool) -> list[Finding]:
        ctx = TurnContext(conversation, index, view, self.lexicons)
        active: list[Match[Rule]] = []
        excused: list[tuple[Match[Rule], str]] = []
        for match in matches:
            reason = suppression(match.payload, match.start, match.end, ctx)
            if reason is None:
                active.append(match)
            else:
                excused.append((match, reason))
        for match in list(active):  # 不敢说是全网最好: the 最好 inside shares its context
            outer = _enclosing(match, [(m, r) for m, r in excused if not r.startswith("role")])
            if outer is not None:
                active.remove(match)
                excused.append((match, outer))
        kept = _longest_per_category(active)
        findings = [self._finding(m, index, view.original) for m in kept]
        if explain:
            findings += [self._finding(m, index, view.original, reason) for m, reason in excused]
            shown = set(kept)
            findings += [self._finding(m, index, view.original, "overlap: inside a longer hit of the same category")
                         for m in active if m not in shown]
        return findings

    def _finding(self, match: Match[Rule], turn: int, text: str, suppressed_by: str | None = None) -> Finding:
        rule = match.payload
        return Finding(
            rule_id=rule.id, category=rule.category, kind=FindingKind.VIOLATION, severity=rule.severity,
            turn=turn, start=match.start, end=match.end, evidence=text[match.start:match.end],
            citation=rule.citation, message=rule.message or rule.description, rewrite=rule.rewrite, match=match.how,
            confidence=CONFIDENCE[match.how], detector=self.name, detector_version=self.version,
            suppressed_by=suppressed_by,
        )


def _refuse_removals(old: RuleBook, new: RuleBook, sources: list[Path] | None) -> None:
    gone = [f"pack {name!r}" for name in sorted({p.pack for p in old.packs} - {p.pack for p in new.packs})]
    gone += [f"category {name!r}" for name in old.categories if name not in new.categories]
    if gone:
        raise RulePackError(ErrorCode.E011, source=", ".join(map(str, sources or [BUNDLED_PACKS])),
                            detail=f"the reload removes {', '.join(gone)}; the old packs stay in force "
                                   "(allow pack removal to accept it)")


def _enclosing(match: Match[Rule], excused: list[tuple[Match[Rule], str]]) -> str | None:
    """The reason of an excused longer hit of the same category enclosing ``match``."""
    for outer, reason in excused:
        if (outer.payload.category == match.payload.category and outer.start <= match.start
                and match.end <= outer.end and outer.end - outer.start > match.end - match.start):
            return f"{reason} (inside a longer excused hit)"
    return None


def _longest_per_category(matches: list[Match[Rule]]) -> list[Match[Rule]]:
    """Of hits overlapping within one category keep the longest (then the most severe).

    A category's kept hits never overlap, so sorted by start their ends are sorted too: a new hit
    overlaps one of them exactly when the last kept hit starting before its end ends after its start
    (a bisection, not a scan of every kept hit: a long draft can carry thousands of hits)."""
    ordered = sorted(matches, key=lambda m: (-(m.end - m.start), _SEVERITY_RANK[m.payload.severity],
                                             m.start, m.payload.id))
    spans: dict[str, tuple[list[int], list[int]]] = {}  # per category: kept starts, kept ends (both sorted)
    kept: list[Match[Rule]] = []
    for match in ordered:
        starts, ends = spans.setdefault(match.payload.category, ([], []))
        before = bisect_left(starts, match.end)
        if before and ends[before - 1] > match.start:
            continue
        starts.insert(before, match.start)
        ends.insert(before, match.end)
        kept.append(match)
    return sorted(kept, key=lambda m: (m.start, m.end, m.payload.id))


def make_rule_detector(packs: list[str] | None = None) -> RuleDetector:
    """Registry factory ``qa.rules.v1``: the bundled packs, or the pack files / folders given."""
    sources = [Path(p) for p in packs] if packs else None
    return RuleDetector(load_rulebook(sources), sources=sources)


