"""The one scoring path shared by the CLI, the batch job and the live service (pure).

normalise → detect (rules, models, baselines) → service metrics and standards →
scorecard → a `ScoreReport` that records every version it depended on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

from pydantic import BaseModel, ConfigDict

import qa_engine.baselines  # noqa: F401  (registers the lexical baseline detectors)
from qa_engine import __version__
from qa_engine.detector import Batching, Detector, Explainer, Reloadable, TurnScoped, Versioned, detectors
from qa_engine.findings import Finding, FindingKind, ScoreReport, Versions
from qa_engine.lexicons import Lexicons, load_lexicons
from qa_engine.metrics import service_metrics
from qa_engine.schema import Conversation, Role, Turn
from qa_engine.errors import ErrorCode, ScorecardError
from qa_engine.scorecard import Scorecard, label_of, load_scorecard
from qa_engine.tables import customer_id_of


MODEL_PREFIX = "model."  # data_versions keys of model artefacts; the rest are rule packs
SCORE_BATCH = 256  # conversations per `score_many` batch: amortises per-batch work, bounds memory


class DetectorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    config: dict[str, Any] = {}


class PipelineConfig(BaseModel):
    """One run's configuration: which detectors (by registered name) and which scorecard."""

    model_config = ConfigDict(extra="forbid")

    detectors: list[DetectorSpec]
    scorecard: str | None = None


class Pipeline:
    """Scores conversations.

    Example:
        >>> pipeline = Pipeline.from_config()
        >>> [f.rule_id for f in pipeline.check("亲，这款是全网最好的")]
        ['ad_law.network_best']
    """

    def __init__(self, detectors: Sequence[Detector], scorecard: Scorecard | None = None,
                 lexicons: Lexicons | None = None) -> None:
        self.detectors = list(detectors)
        self.scorecard = scorecard or load_scorecard()
        self.lexicons = lexicons or load_lexicons()
        # protocol checks once here, not per call: a runtime Protocol isinstance costs ~30 µs (live path)
        self._versioned = [d for d in self.detectors if isinstance(d, Versioned)]
        self._batching = [isinstance(d, Batching) for d in self.detectors]
        self._turn_scoped = [isinstance(d, TurnScoped) for d in self.detectors]
        self._versions: Versions | None = None
        self.check_categories()

    def check_categories(self) -> None:
        """Refuse detectors emitting a category the scorecard does not score (a new pack whose category
        was not added to a section would otherwise count for nothing).

        Raises:
            ScorecardError: E021, naming the category and the detector.
        """
        for detector in self.detectors:
            self._categories_scored(detector.name)(getattr(detector, "categories", ()))

    def _categories_scored(self, detector: str) -> Callable[[Iterable[str]], None]:
        def check(categories: Iterable[str]) -> None:
            for category in categories:
                if category not in self.scorecard.scored_categories:
                    raise ScorecardError(ErrorCode.E021, scorecard=self.scorecard.id, category=category,
                                         detector=detector)
        return check

    @property
    def versions(self) -> Versions:
        """What the next result depends on (rule packs may have been reloaded since start)."""
        data: dict[str, str] = {}
        for detector in self._versioned:
            data.update(detector.data_versions())
        packs = {k: v for k, v in data.items() if not k.startswith(MODEL_PREFIX)}
        models = {k[len(MODEL_PREFIX):]: v for k, v in data.items() if k.startswith(MODEL_PREFIX)}
        if self._versions is None or (self._versions.rule_packs, self._versions.models) != (packs, models):
            self._versions = Versions(engine=__version__, scorecard=self.scorecard.id, lexicons=self.lexicons.version,
                                      detectors={d.name: d.version for d in self.detectors}, rule_packs=packs,
                                      models=models)
        return self._versions

    @classmethod
    def from_config(cls, config: PipelineConfig | None = None, scorecard: Scorecard | None = None) -> Pipeline:
        """Build from a config (the bundled ``conf/default.yaml`` when ``None``)."""
        if config is None:
            from qa_engine.config import default_config
            config = default_config()
        made = [detectors.make(spec.name, **spec.config) for spec in config.detectors]
        return cls(made, scorecard)

    def reload(self, allow_removal: bool = False) -> Versions:
        """Re-read every reloadable detector's data; on an error the old data stays in force.

        A rule pack or category that disappeared is refused like malformed data unless
        ``allow_removal`` (the operator's explicit choice).

        Raises:
            QAEngineError: the first detector whose new data is malformed or drops a pack
                (those before it have already swapped theirs in).
        """
        for detector in self.detectors:
            if isinstance(detector, Reloadable):
                detector.reload(check=self._categories_scored(detector.name), allow_removal=allow_removal)
        return self.versions

    def watched_files(self) -> list[str]:
        return sorted({path for d in self.detectors if isinstance(d, Reloadable) for path in d.watched_files()})

    def findings(self, conversation: Conversation, explain: bool = False) -> list[Finding]:
        """Every detector's findings, in a stable order."""
        found: list[Finding] = []
        for detector in self.detectors:
            if explain and isinstance(detector, Explainer):
                found.extend(detector.explain(conversation))
            else:
                found.extend(detector.detect(conversation))
        return found

    def findings_many(self, conversations: Sequence[Conversation]) -> list[list[Finding]]:
        """`findings` of each conversation, batching detectors that can (identical results)."""
        found: list[list[Finding]] = [[] for _ in conversations]
        for detector, batching in zip(self.detectors, self._batching):
            batch = (detector.detect_many(conversations) if batching
                     else [detector.detect(conversation) for conversation in conversations])
            for mine, theirs in zip(found, batch, strict=True):
                mine.extend(theirs)
        return found

    def score(self, conversation: Conversation, explain: bool = False) -> ScoreReport:
        """Score one conversation. ``explain`` adds the suppressed hits (they never score)."""
        return self._report(conversation, self.findings(conversation, explain))

    def score_many(self, conversations: Iterable[Conversation], batch_size: int = SCORE_BATCH) -> Iterator[ScoreReport]:
        """Score conversations in batches of ``batch_size`` (the same reports as `score`, faster)."""
        iterator = iter(conversations)
        while batch := list(islice(iterator, batch_size)):
            yield from map(self._report, batch, self.findings_many(batch))

    def _report(self, conversation: Conversation, found: list[Finding]) -> ScoreReport:
        versions = self.versions
        metrics = service_metrics(conversation, self.lexicons)
        found += self.scorecard.service_findings(conversation, metrics)
        counted = [f for f in found if f.suppressed_by is None]
        sections = self.scorecard.section_scores(counted)
        auto_fail = self.scorecard.auto_fail_reasons(counted)
        total = 0.0 if auto_fail else self.scorecard.total(sections)
        return ScoreReport(
            conversation_id=conversation.conversation_id, agent_id=conversation.agent_id, team=conversation.team,
            channel=conversation.channel, customer_id=customer_id_of(conversation), start_time=conversation.start_time,
            score=total, passed=not auto_fail and total >= self.scorecard.pass_threshold,
            auto_fail_reasons=auto_fail, sections=sections, resolution=label_of(counted, "resolution"),
            empathy=label_of(counted, "empathy"), metrics=metrics,
            findings=sorted(found, key=lambda f: f.sort_key), versions=versions,
        )

    def check(self, draft: str, role: Role = Role.AGENT, context: Sequence[Turn] = (),
              conversation_id: str = "draft") -> list[Finding]:
        """Violations in a draft reply, given the turns before it (the live-warning path)."""
        conversation = Conversation(conversation_id=conversation_id, turns=(*context, Turn(role=role, text=draft)))
        last = len(conversation.turns) - 1
        found = [f for detector, turn_scoped in zip(self.detectors, self._turn_scoped)
                 for f in (detector.detect_turn(conversation, last) if turn_scoped else detector.detect(conversation))]
        return [f for f in found if f.turn == last and f.kind is FindingKind.VIOLATION and f.category != "empathy"]
