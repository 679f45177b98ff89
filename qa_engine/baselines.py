"""Lexical baseline detectors for empathy and resolution (floor: qa_engine; pure).

These are the *baselines*: cue lists from ``conf/lexicons.yaml``, no model. The model
heads of the models issue replace them when installed and are evaluated against them on
the same test split, so they stay deliberately simple and explainable.
"""

from __future__ import annotations

import re

from qa_engine.detector import detectors
from qa_engine.findings import Finding, FindingKind, Severity
from qa_engine.lexicons import Lexicons, load_lexicons
from qa_engine.schema import Conversation, Role
from qa_engine.text import TextView, fold, normalise

_SPEAKERS = (Role.AGENT, Role.BOT)
_CLAUSE_MARKS = re.compile(r"[，。！？；：、,!?;:~]+")


class EmpathyLexicalDetector:
    """Does the (human) agent acknowledge feelings, apologise or reassure before solving?

    Emits a ``signal`` per empathy cue, and one ``label`` finding ``empathy``:
    ``present`` (empathy before the first solution, or the customer never complained),
    ``late`` (only after the solution), ``missing`` (customer complained, no empathy) or
    ``not_needed`` (no complaint and no empathy). ``late`` and ``missing`` also emit a
    violation so auditors see them in the findings list.
    """

    name = "qa.empathy.lexical.v1"
    version = "1.0.0"
    KINDS = ("acknowledge", "apology", "reassurance")

    def __init__(self, lexicons: Lexicons | None = None) -> None:
        self.lexicons = lexicons or load_lexicons()

    def detect(self, conversation: Conversation) -> list[Finding]:
        findings: list[Finding] = []
        complaint_turn = first_empathy = first_solution = None
        for index, turn in enumerate(conversation.turns):
            view = normalise(turn.text)
            if turn.role is Role.CUSTOMER:
                if complaint_turn is None and self.lexicons.cues("complaint", "cues").first(view.compact):
                    complaint_turn = index
                continue
            if turn.role is not Role.AGENT:
                continue  # a bot's scripted 抱歉，我没有理解 is not empathy
            for kind in self.KINDS:
                spans = self.lexicons.cues("empathy", kind).spans(view.compact)
                if spans:
                    findings.append(self._signal(view, index, kind, spans[0]))
                    first_empathy = index if first_empathy is None else first_empathy
            if first_solution is None and complaint_turn is not None and \
                    self.lexicons.cues("solution", "cues").first(view.compact):
                first_solution = index
        label, turn = self._label(complaint_turn, first_empathy, first_solution)
        findings.append(self._make(f"empathy.{label}", FindingKind.LABEL, Severity.INFO, turn, label=label))
        if label == "missing":
            findings.append(self._make("empathy.missing", FindingKind.VIOLATION, Severity.MAJOR, complaint_turn,
                                       message="The customer complained and the agent never acknowledged it"))
        elif label == "late":
            findings.append(self._make("empathy.late", FindingKind.VIOLATION, Severity.MINOR, first_empathy,
                                       message="Empathy came only after the solution"))
        return findings

    @staticmethod
    def _label(complaint: int | None, empathy: int | None, solution: int | None) -> tuple[str, int | None]:
        if complaint is None:
            return ("present", empathy) if empathy is not None else ("not_needed", None)
        if empathy is None:
            return "missing", complaint
        if solution is not None and empathy > solution:
            return "late", empathy
        return "present", empathy

    def _signal(self, view: TextView, turn: int, kind: str, span: tuple[int, int, str]) -> Finding:
        start, end = view.compact_to_original(span[0], span[1])
        return self._make(f"empathy.{kind}", FindingKind.SIGNAL, Severity.INFO, turn, start=start, end=end,
                          evidence=view.original[start:end], message=f"{kind} cue {span[2]!r}")

    def _make(self, rule_id: str, kind: FindingKind, severity: Severity, turn: int | None, **extra: object) -> Finding:
        return Finding(rule_id=rule_id, category="empathy", kind=kind, severity=severity, turn=turn,
                       match="cue", detector=self.name, detector_version=self.version, **extra)


class ResolutionLexicalDetector:
    """Resolved, unresolved or escalated, from cues in the closing turns.

    Escalation cues from the agent or system anywhere win; otherwise the customer's last
    turn decides (thanks / OK → resolved; complaint → unresolved); a conversation whose
    customer stops without either counts as resolved only when an agent solution came
    after the customer's last turn, else unresolved.
    """

    name = "qa.resolution.lexical.v1"
    version = "1.0.0"

    def __init__(self, lexicons: Lexicons | None = None) -> None:
        self.lexicons = lexicons or load_lexicons()

    def detect(self, conversation: Conversation) -> list[Finding]:
        label, turn = self._decide(conversation)
        return [Finding(rule_id=f"resolution.{label}", category="resolution", kind=FindingKind.LABEL,
                        severity=Severity.INFO, turn=turn, label=label, match="cue",
                        evidence="" if turn is None else conversation.turns[turn].text,
                        detector=self.name, detector_version=self.version)]

    def _decide(self, conversation: Conversation) -> tuple[str, int | None]:
        cues = self.lexicons.cues
        turns = conversation.turns
        for index, turn in enumerate(turns):
            if turn.role is not Role.CUSTOMER and cues("resolution", "escalated").first(fold(turn.text)):
                return "escalated", index
        customer = [i for i, t in enumerate(turns) if t.role is Role.CUSTOMER]
        if not customer:
            return "unresolved", None
        last = customer[-1]
        compact = fold(turns[last].text)
        if cues("resolution", "customer_unresolved").first(compact):
            return "unresolved", last
        if cues("resolution", "customer_resolved").first(compact) or \
                _CLAUSE_MARKS.sub("", compact) in self.lexicons.resolution["customer_ack"]:
            return "resolved", last
        for index in range(last + 1, len(turns)):
            if turns[index].role in _SPEAKERS and cues("solution", "cues").first(fold(turns[index].text)):
                return "resolved", index
        return "unresolved", last


@detectors.register(EmpathyLexicalDetector.name)
def make_empathy_lexical() -> EmpathyLexicalDetector:
    return EmpathyLexicalDetector()


@detectors.register(ResolutionLexicalDetector.name)
def make_resolution_lexical() -> ResolutionLexicalDetector:
    return ResolutionLexicalDetector()
