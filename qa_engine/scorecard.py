"""The scorecard: findings + service metrics → section scores, auto-fail, pass (pure).

A scorecard is data (``conf/scorecard.yaml``): sections with weights, either penalty
sections (100 minus severity penalties of violations in their categories) or label
sections (a label finding's score), auto-fail items and the service standards, whose
breaches become ``service`` findings here, next to the metrics they were measured from.
"""

from __future__ import annotations

from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qa_engine.errors import ErrorCode, ScorecardError
from qa_engine.findings import Finding, FindingKind, ServiceMetrics, Severity
from qa_engine.schema import Conversation

SCORECARD_DETECTOR = "qa.scorecard.service_standards"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: float = Field(gt=0)
    categories: tuple[str, ...] = ()
    penalties: dict[Severity, float] = {}
    label_rule: str | None = None
    label_scores: dict[str, float | None] = {}

    @model_validator(mode="after")
    def _one_kind(self) -> Section:
        if bool(self.categories) == bool(self.label_rule):
            raise ValueError("a section has either 'categories' (+ 'penalties') or 'label_rule' (+ 'label_scores')")
        return self


class AutoFail(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    severities: tuple[Severity, ...] = (Severity.CRITICAL,)
    categories: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()  # the categories of these sections (the list lives in one place)
    rules: tuple[str, ...] = ()


ServiceItem = Literal["greeting", "first_response", "longest_gap", "closing_invite", "handover"]


class ServiceStandards(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    greeting_within_s: float = 10
    first_response_within_s: float = 30
    longest_gap_within_s: float = 180
    require_greeting: bool = True
    require_closing_invite: bool = True
    bot_failures_before_handover: int = 3
    severities: dict[ServiceItem, Severity] = {}


class Scorecard(BaseModel):
    """A validated scorecard."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str
    pass_threshold: float = Field(ge=0, le=100)
    sections: dict[str, Section]
    auto_fail: AutoFail = AutoFail()
    service_standards: ServiceStandards = ServiceStandards()

    @model_validator(mode="after")
    def _auto_fail_sections_exist(self) -> Scorecard:
        unknown = [s for s in self.auto_fail.sections if s not in self.sections]
        if unknown:
            raise ValueError(f"auto_fail.sections names unknown sections: {', '.join(unknown)}")
        return self

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def scored_categories(self) -> set[str]:
        """Every violation category some section scores (the service standards' own 'service' included)."""
        return {c for section in self.sections.values() for c in section.categories}

    @property
    def auto_fail_categories(self) -> set[str]:
        """Categories whose findings can fail a conversation outright (empty: any)."""
        return {*self.auto_fail.categories, *(c for s in self.auto_fail.sections for c in self.sections[s].categories)}

    def service_findings(self, conversation: Conversation, metrics: ServiceMetrics) -> list[Finding]:
        """Breaches of the service standards, each pointing at the turn it was measured on."""
        std = self.service_standards
        breaches: list[tuple[ServiceItem, int | None, str]] = []
        if std.require_greeting and not metrics.greeted:
            breaches.append(("greeting", None, "The first reply carries no greeting"))
        if metrics.greeting_s is not None and metrics.greeting_s > std.greeting_within_s:
            breaches.append(("greeting", None, f"Greeting after {metrics.greeting_s:.0f} s (standard ≤ {std.greeting_within_s:.0f} s)"))
        if metrics.first_response_s is not None and metrics.first_response_s > std.first_response_within_s:
            breaches.append(("first_response", metrics.first_response_turn,
                             f"First response after {metrics.first_response_s:.0f} s (standard ≤ {std.first_response_within_s:.0f} s)"))
        if metrics.longest_agent_gap_s is not None and metrics.longest_agent_gap_s > std.longest_gap_within_s:
            breaches.append(("longest_gap", metrics.longest_agent_gap_turn,
                             f"Customer waited {metrics.longest_agent_gap_s:.0f} s for a reply (standard ≤ {std.longest_gap_within_s:.0f} s)"))
        if std.require_closing_invite and not metrics.closing_invite:
            breaches.append(("closing_invite", None, "No closing or satisfaction invite"))
        if metrics.bot_failures >= std.bot_failures_before_handover and not metrics.handed_over:
            breaches.append(("handover", None,
                             f"{metrics.bot_failures} failed bot answers and no hand-over to a human"))
        return [
            Finding(rule_id=f"service.{item}", category="service", kind=FindingKind.VIOLATION,
                    severity=std.severities.get(item, Severity.MINOR), turn=turn,
                    evidence="" if turn is None else conversation.turns[turn].text, message=message,
                    detector=SCORECARD_DETECTOR, detector_version=self.version)
            for item, turn, message in breaches
        ]

    def section_scores(self, findings: list[Finding]) -> dict[str, float | None]:
        scores: dict[str, float | None] = {}
        for name, section in self.sections.items():
            if section.label_rule is not None:
                label = label_of(findings, section.label_rule)
                scores[name] = None if label is None else section.label_scores.get(label)
            else:
                penalty = sum(section.penalties.get(f.severity, 0.0) for f in findings
                              if f.kind is FindingKind.VIOLATION and f.category in section.categories)
                scores[name] = max(0.0, 100.0 - penalty)
        return scores

    def auto_fail_reasons(self, findings: list[Finding]) -> list[str]:
        rule, categories = self.auto_fail, self.auto_fail_categories
        return sorted({
            f"{f.rule_id} ({f.severity.value})" for f in findings
            if f.kind is FindingKind.VIOLATION and (
                f.rule_id in rule.rules
                or (f.severity in rule.severities and (not categories or f.category in categories)))
        })

    def total(self, sections: dict[str, float | None]) -> float:
        applicable = [(self.sections[name].weight, score) for name, score in sections.items() if score is not None]
        weight = sum(w for w, _ in applicable)
        return round(sum(w * s for w, s in applicable) / weight, 2) if weight else 100.0


def label_of(findings: list[Finding], category: str) -> str | None:
    """A category's label; a model's (``match == "model"``) wins over a baseline's when both ran."""
    labels = [f for f in findings if f.kind is FindingKind.LABEL and f.category == category]
    return next((f.label for f in sorted(labels, key=lambda f: f.match != "model")), None)


def parse_scorecard(text: str, source: str) -> Scorecard:
    try:
        return Scorecard.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as exc:
        raise ScorecardError(ErrorCode.E020, source=source, detail="; ".join(str(exc).splitlines()[:3])) from None


def load_scorecard(text: str | None = None, source: str = "qa_engine/conf/scorecard.yaml") -> Scorecard:
    """The scorecard in ``text``, or the bundled default."""
    if text is None:
        text = resources.files("qa_engine").joinpath("conf/scorecard.yaml").read_text(encoding="utf-8")
    return parse_scorecard(text, source)
