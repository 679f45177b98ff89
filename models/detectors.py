"""Model detectors, registered beside the rule detectors (``qa_engine.detectors`` entry points).

- ``qa.violation.model.v1``: every rule hit (the ones context excused included) goes to the
  contextual-violation head; the rules' decision stands unless the model is confident otherwise
  (removes lexicon false positives, restores excused real violations) — the hybrid decision; and
  the turn head raises conduct and efficacy findings, with their evidence clause, on agent turns
  no rule of the category hit (wording no phrase list covers);
- ``qa.empathy.model.v1``: the empathy label (present / late / missing / not_needed) with the
  empathy head judging agent turns and the emotion head (or a complaint cue) finding the complaint;
- ``qa.resolution.model.v1``: resolved / unresolved / escalated from the whole conversation;
- ``qa.emotion.model.v1``: the customer's emotion at the end of the conversation.

Each factory falls back, with a ``ModelFallbackWarning`` notice, to the lexical baseline (or
the plain rule detector) when the model files, onnxruntime or torch are missing, so a
pipeline configured for models always builds; the report's versions then name the baseline.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qa_engine.baselines import EmpathyLexicalDetector, ResolutionLexicalDetector
from qa_engine.findings import Finding, FindingKind, Severity
from qa_engine.schema import Conversation, Role
from qa_engine.text import normalise
from models import SHIPPED_MODEL
from models.artefact import ModelUnavailable
from models.backends import Backend, load_backend, softmax
from models.tasks import (HEADS, conversation_input, hit_input, hybrid_decision, is_candidate, previous_other,
                          raised_category, turn_input, turn_pair)

VERSION = "1.0.0"


class ModelFallbackWarning(UserWarning):
    """A model detector was asked for but could not load; its baseline runs instead."""


class _ModelDetector:
    """What every model detector shares: its backend and the model provenance results record."""

    name = ""
    version = VERSION

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.artefact = backend.artefact

    def data_versions(self) -> dict[str, str]:
        """``model.<name>: <version> sha256:<checksum>`` — lands in every ScoreReport's versions — and
        the teacher the student was distilled from (or the student a running teacher was distilled into)."""
        versions = {f"model.{self.artefact.name}": self.artefact.provenance}
        related = self.artefact.manifest.get("teacher") or self.artefact.manifest.get("student")
        if related:
            versions[f"model.{related['name']}"] = related["provenance"]
        return versions

    def detect(self, conversation: Conversation) -> list[Finding]:
        return self.detect_many([conversation])[0]

    def detect_many(self, conversations: Sequence[Conversation]) -> list[list[Finding]]:
        """Findings per conversation. The model reads every conversation of the batch in one call
        (length-bucketed across conversations) when its backend computes each row alone, so a
        conversation's findings never depend on its batch-mates; otherwise one conversation at a time."""
        if len(conversations) > 1 and not self.backend.row_independent:
            return [self._batch([conversation])[0] for conversation in conversations]
        return self._batch(conversations)

    def _batch(self, conversations: Sequence[Conversation]) -> list[list[Finding]]:
        """Each detector's own: the findings of these conversations from one model call per head."""
        raise NotImplementedError

    def _finding(self, rule_id: str, category: str, kind: FindingKind, turn: int | None, confidence: float,
                 **extra: object) -> Finding:
        return Finding(rule_id=rule_id, category=category, kind=kind, turn=turn, match="model",
                       confidence=round(float(confidence), 4), detector=self.name, detector_version=self.version,
                       **{"severity": Severity.INFO, **extra})


class EmpathyModelDetector(_ModelDetector, EmpathyLexicalDetector):
    """The baseline's present / late / missing logic, with turns judged by the empathy and emotion heads."""

    name = "qa.empathy.model.v1"

    def __init__(self, backend: Backend) -> None:
        _ModelDetector.__init__(self, backend)
        EmpathyLexicalDetector.__init__(self)

    def _batch(self, conversations: Sequence[Conversation]) -> list[list[Finding]]:
        return [self._judged(c, spoken, logits)
                for c, (spoken, logits) in zip(conversations, turn_logits(self.backend, conversations))]

    def _judged(self, conversation: Conversation, spoken: list[int], logits: dict[str, np.ndarray]) -> list[Finding]:
        turns = conversation.turns
        empathy, emotion = softmax(logits["empathy"])[:, 1], softmax(logits["emotion"])[:, 0]
        threshold = self.artefact.threshold("empathy")
        findings: list[Finding] = []
        complaint = first_empathy = first_solution = None
        for row, index in enumerate(spoken):
            view = normalise(turns[index].text)
            if turns[index].role is Role.CUSTOMER:
                if complaint is None and (emotion[row] >= 0.5 or self.lexicons.cues("complaint", "cues").first(view.compact)):
                    complaint = index
                continue
            if empathy[row] >= threshold:
                findings.append(self._finding("empathy.model", "empathy", FindingKind.SIGNAL, index, empathy[row],
                                              start=0, end=len(turns[index].text), evidence=turns[index].text,
                                              message=f"empathy (model p={empathy[row]:.2f})"))
                first_empathy = index if first_empathy is None else first_empathy
            if first_solution is None and complaint is not None and self.lexicons.cues("solution", "cues").first(view.compact):
                first_solution = index
        label, turn = self._label(complaint, first_empathy, first_solution)
        findings.append(self._finding(f"empathy.{label}", "empathy", FindingKind.LABEL, turn, 1.0, label=label))
        if label == "missing":
            findings.append(self._finding("empathy.missing", "empathy", FindingKind.VIOLATION, complaint, 1.0,
                                          severity=Severity.MAJOR,
                                          message="The customer complained and the agent never acknowledged it"))
        elif label == "late":
            findings.append(self._finding("empathy.late", "empathy", FindingKind.VIOLATION, first_empathy, 1.0,
                                          severity=Severity.MINOR, message="Empathy came only after the solution"))
        return findings


class ResolutionModelDetector(_ModelDetector):
    name = "qa.resolution.model.v1"

    def _batch(self, conversations: Sequence[Conversation]) -> list[list[Finding]]:
        probs = self.backend.probabilities("resolution", [(conversation_input(c.turns), None) for c in conversations])
        return [self._labelled(c, p) for c, p in zip(conversations, probs)]

    def _labelled(self, conversation: Conversation, probs: np.ndarray) -> list[Finding]:
        label = HEADS["resolution"][int(probs.argmax())]
        last = max((i for i, t in enumerate(conversation.turns) if t.role is Role.CUSTOMER), default=None)
        return [self._finding(f"resolution.{label}", "resolution", FindingKind.LABEL, last, probs.max(), label=label,
                              evidence="" if last is None else conversation.turns[last].text)]


class EmotionModelDetector(_ModelDetector):
    """The customer's emotion in their last turn ('emotion at end') and their satisfaction with the
    conversation (``satisfaction_score``), cut at thresholds tuned on dev against the customers' own
    dialogue ratings (JDDC)."""

    name = "qa.emotion.model.v1"

    def _batch(self, conversations: Sequence[Conversation]) -> list[list[Finding]]:
        return [self._labelled(c, *customer_probabilities(c, spoken, logits))
                for c, (spoken, logits) in zip(conversations, turn_logits(self.backend, conversations))]

    def _labelled(self, conversation: Conversation, customer: list[int], probs: np.ndarray) -> list[Finding]:
        if not customer:
            return []
        last = customer[-1]
        label = HEADS["emotion"][int(probs[-1].argmax())]
        mood = satisfaction_score(probs)
        satisfaction = satisfaction_label(mood, self.artefact.threshold("satisfaction_low"),
                                          self.artefact.threshold("satisfaction_high"))
        return [self._finding(f"emotion.{label}", "emotion", FindingKind.LABEL, last, probs[-1].max(), label=label,
                              evidence=conversation.turns[last].text),
                self._finding(f"satisfaction.{satisfaction}", "satisfaction", FindingKind.LABEL, None, 1.0,
                              label=satisfaction, message=f"customer mood {mood:+.2f} (minus mean p(negative), last turns)")]


def customer_emotion(backend: Backend, conversation: Conversation) -> tuple[list[int], np.ndarray]:
    """The customer's turns and the emotion head's probabilities for each (from the shared turn pass)."""
    return customer_probabilities(conversation, *turn_logits(backend, [conversation])[0])


def customer_probabilities(conversation: Conversation, spoken: list[int],
                           logits: dict[str, np.ndarray]) -> tuple[list[int], np.ndarray]:
    rows = [row for row, i in enumerate(spoken) if conversation.turns[i].role is Role.CUSTOMER]
    return [spoken[row] for row in rows], softmax(logits["emotion"][rows])


SATISFACTION_TURNS = 3  # the customer's last turns the conversation's satisfaction is read from


def satisfaction_score(emotion_probs: np.ndarray) -> float:
    """Minus the mean p(negative) over the customer's last turns (emotion head order: negative, neutral,
    positive). Chosen on the train and dev splits: the customers' dialogue ratings follow how dissatisfied
    they still are at the end (ρ 0.39 / 0.25) more than their average mood (0.33 / 0.10)."""
    return -float(emotion_probs[-SATISFACTION_TURNS:, 0].mean()) if len(emotion_probs) else 0.0


def satisfaction_label(score: float, low: float, high: float) -> str:
    return "dissatisfied" if score < low else "satisfied" if score >= high else "neutral"


class HybridViolationDetector(_ModelDetector):
    """Rule hits decided in context (the rules' decision unless the model is confident otherwise), plus
    the conduct and efficacy turns the turn head raises where no rule of the category counted.

    A raised finding cites its evidence: the clause whose removal lowers the head's probability most (a
    turn of one clause is its own evidence); citation, message and rewrite come from the category's lead rule (the
    first of its pack). Delegates reloading and rule-pack versions to the wrapped rule detector, so the
    live service can watch and reload its packs as before.
    """

    name = "qa.violation.model.v1"

    def __init__(self, backend: Backend, rules) -> None:
        super().__init__(backend)
        self.rules = rules
        self.raises = "turn_violation" in self.artefact.manifest["heads"]  # artefacts before 0.3.0 lack the head

    def data_versions(self) -> dict[str, str]:
        return {**self.rules.data_versions(), **super().data_versions()}

    def reload(self, check=None, allow_removal: bool = False) -> object:
        return self.rules.reload(check, allow_removal)

    @property
    def categories(self) -> list[str]:
        return self.rules.categories

    def watched_files(self) -> list[str]:
        return self.rules.watched_files()

    def _batch(self, conversations: Sequence[Conversation]) -> list[list[Finding]]:
        return [[f for f in decided if f.suppressed_by is None] for decided in self._decide(conversations)]

    def decision_note(self, finding: Finding) -> str | None:
        """Why a counted finding counts: the model's probability against the threshold that applied."""
        if finding.detector != self.name or finding.suppressed_by is not None:
            return None
        if finding.match == "model":
            return (f"raised by the model: p({finding.category})={finding.confidence:.2f} ≥ "
                    f"{self.artefact.threshold('turn_violation'):.2f}; no rule of the category counted on this turn")
        keep, restore = self.artefact.threshold("violation_keep"), self.artefact.threshold("violation_restore")
        return (f"counted: model p(real)={finding.confidence:.2f} (a hit the rules count stays at ≥ {keep:.2f}; "
                f"one context excused comes back at ≥ {restore:.2f})")

    def explain(self, conversation: Conversation) -> list[Finding]:
        return self._decide([conversation])[0]

    def detect_turn(self, conversation: Conversation, index: int) -> list[Finding]:
        """The live path: turn ``index`` alone, read with its context — its rule hits and the turn head on
        that turn. Equal to ``detect``'s findings on the turn where the backend computes each row alone
        (``row_independent``, the shipped static int8 graph)."""
        return [f for f in self._decide([conversation], only=index)[0] if f.suppressed_by is None]

    def _decide(self, conversations: Sequence[Conversation], only: int | None = None) -> list[list[Finding]]:
        """Every rule hit of every conversation (the excused ones included; of turn ``only`` alone when
        given), the candidates judged by the model in one call, each conversation's hits in the rules'
        order; then the raised findings."""
        hits = self.rules.explain_many(conversations) if only is None else [self.rules.explain_turn(conversations[0], only)]
        candidates = [(c, h, hit) for c, found in enumerate(hits) for h, hit in enumerate(found) if is_candidate(hit)]
        probs = self.backend.probabilities("violation", [
            (hit_input(conversations[c].turns[hit.turn].text, hit.start, hit.end, hit.category),
             turn_input(previous_other(conversations[c], hit.turn) or "") or None)
            for c, _, hit in candidates])[:, 1] if candidates else np.zeros(0)
        keep, restore = self.artefact.threshold("violation_keep"), self.artefact.threshold("violation_restore")
        decided = [list(found) for found in hits]
        for (c, h, hit), p in zip(candidates, probs):
            counts = hybrid_decision(hit.suppressed_by is None, p, keep, restore)
            threshold = f"keep {keep:.2f}" if hit.suppressed_by is None else f"restore {restore:.2f}"
            reason = None if counts else f"{hit.suppressed_by}; model p(real)={p:.2f} < {threshold}" if hit.suppressed_by \
                else f"model: not a violation in context (p(real)={p:.2f} < {threshold})"
            decided[c][h] = hit.model_copy(update={"suppressed_by": reason, "confidence": round(float(p), 4),
                                                   "detector": self.name, "detector_version": self.version})
        if self.raises:
            for found, raised in zip(decided, self._raised(conversations, decided, only)):
                found += raised
        return decided

    def _raised(self, conversations: Sequence[Conversation], decided: list[list[Finding]],
                only: int | None = None) -> list[list[Finding]]:
        """The turn head's own findings: an agent turn it scores at or above its threshold for conduct or
        efficacy, where no hit of that category counted."""
        threshold = self.artefact.threshold("turn_violation")
        lead = {}
        for rule in self.rules.rulebook.rules:
            lead.setdefault(rule.category, rule)
        raised: list[list[tuple[int, str, float]]] = []
        for c, judged in enumerate(self._turn_probabilities(conversations, only)):
            counted = {(f.turn, f.category) for f in decided[c] if f.suppressed_by is None}
            mine = []
            for index, probs in judged:
                category = raised_category(probs, threshold)
                if category and category in lead and (index, category) not in counted:
                    mine.append((index, category, float(probs[HEADS["turn_violation"].index(category)])))
            raised.append(mine)
        spans = self._evidence([(conversations[c], index, category) for c, mine in enumerate(raised)
                                for index, category, _ in mine])
        out: list[list[Finding]] = []
        for c, mine in enumerate(raised):
            findings = []
            for index, category, p in mine:
                start, end = next(spans)
                rule, text = lead[category], conversations[c].turns[index].text
                findings.append(self._finding(f"{category}.model", category, FindingKind.VIOLATION, index, p,
                                              severity=Severity.MAJOR, start=start, end=end, evidence=text[start:end],
                                              citation=rule.citation, rewrite=rule.rewrite,
                                              message=f"{rule.message or rule.description}（模型判断 p={p:.2f}）"))
            out.append(findings)
        return out

    def _turn_probabilities(self, conversations: Sequence[Conversation],
                            only: int | None) -> list[list[tuple[int, np.ndarray]]]:
        """Per conversation, its agent turns (turn ``only`` alone when given) with the turn head's
        probabilities. The whole-conversation path reads the turn pass the empathy and emotion detectors
        share (the backend memoises it), so the models configuration pays nothing extra; the draft path
        reads the one turn."""
        if only is not None:
            [conversation] = conversations
            if conversation.turns[only].role is not Role.AGENT:
                return [[]]
            pair = turn_pair(conversation.turns[only].text, previous_other(conversation, only))
            return [[(only, self.backend.probabilities("turn_violation", [pair])[0])]]
        return [[(index, p) for index, p in zip(spoken, softmax(logits["turn_violation"]))
                 if conversation.turns[index].role is Role.AGENT]
                for conversation, (spoken, logits) in zip(conversations, turn_logits(self.backend, conversations))]

    def _evidence(self, flagged: list[tuple[Conversation, int, str]]):
        """Each flagged turn's evidence span: the clause without which the turn head's probability for the
        category falls most (occlusion: a clause is read with the rest of its turn, as the head read it),
        in one model call for every clause of every flagged turn."""
        clauses = [(c, index, category, clause_spans(c.turns[index].text)) for c, index, category in flagged]
        inputs = [turn_pair(c.turns[index].text[:start] + c.turns[index].text[end:], previous_other(c, index))
                  for c, index, _, spans in clauses if len(spans) > 1 for start, end in spans]
        probs = self.backend.probabilities("turn_violation", inputs) if inputs \
            else np.zeros((0, len(HEADS["turn_violation"])))
        row = 0
        for _, _, category, spans in clauses:
            if len(spans) == 1:
                yield spans[0]
                continue
            without = probs[row:row + len(spans), HEADS["turn_violation"].index(category)]
            row += len(spans)
            yield spans[int(without.argmin())]


_CLAUSE_BREAK = re.compile(r"(?:[，,。！!？?；;～~\s]|(?<!\d)\.|\.(?!\d))+")  # a decimal point (3.5寸) is no break


def clause_spans(text: str) -> list[tuple[int, int]]:
    """The clauses of a turn (between punctuation or spaces), as character spans of the original text; the whole
    turn when it has one clause."""
    spans, start = [], 0
    for gap in _CLAUSE_BREAK.finditer(text):
        if text[start:gap.start()].strip():
            spans.append((start, gap.start()))
        start = gap.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans if len(spans) > 1 else [(0, len(text))]


def turn_logits(backend: Backend, conversations: Sequence[Conversation]) -> list[tuple[list[int], dict[str, np.ndarray]]]:
    """Per conversation: its agent and customer turns and every head's logits for each (read with the
    turn it answers). One call for the batch, shared by the empathy and emotion detectors through the
    backend's memo."""
    spoken = [[i for i, t in enumerate(c.turns) if t.role in (Role.AGENT, Role.CUSTOMER)] for c in conversations]
    logits = backend.logits([turn_pair(c.turns[i].text, previous_other(c, i))
                             for c, indices in zip(conversations, spoken) for i in indices])
    bounds = np.cumsum([0, *map(len, spoken)])
    return [(indices, {head: values[start:end] for head, values in logits.items()})
            for indices, start, end in zip(spoken, bounds[:-1], bounds[1:])]


def _backend(detector: str, fallback: str, model_dir: str | None, backend: str, device: str) -> Backend | None:
    try:
        return load_backend(str(Path(model_dir) if model_dir else SHIPPED_MODEL), backend, device)
    except ModelUnavailable as exc:
        warnings.warn(f"{detector}: model unavailable ({exc}); using {fallback} instead", ModelFallbackWarning,
                      stacklevel=3)
        return None


class _NoEmotion:
    """What ``qa.emotion.model.v1`` becomes without a model: there is no lexical emotion baseline."""

    name = "qa.emotion.none"
    version = VERSION

    def detect(self, conversation: Conversation) -> list[Finding]:
        return []


def make_empathy_model(model_dir: str | None = None, backend: str = "auto", device: str = "auto"):
    loaded = _backend(EmpathyModelDetector.name, EmpathyLexicalDetector.name, model_dir, backend, device)
    return EmpathyModelDetector(loaded) if loaded else EmpathyLexicalDetector()


def make_resolution_model(model_dir: str | None = None, backend: str = "auto", device: str = "auto"):
    loaded = _backend(ResolutionModelDetector.name, ResolutionLexicalDetector.name, model_dir, backend, device)
    return ResolutionModelDetector(loaded) if loaded else ResolutionLexicalDetector()


def make_emotion_model(model_dir: str | None = None, backend: str = "auto", device: str = "auto"):
    loaded = _backend(EmotionModelDetector.name, "no emotion labels", model_dir, backend, device)
    return EmotionModelDetector(loaded) if loaded else _NoEmotion()


def make_hybrid_violation(packs: list[str] | None = None, model_dir: str | None = None, backend: str = "auto",
                          device: str = "auto"):
    from rules.detector import make_rule_detector

    rules = make_rule_detector(packs)
    loaded = _backend(HybridViolationDetector.name, rules.name, model_dir, backend, device)
    return HybridViolationDetector(loaded, rules) if loaded else rules
