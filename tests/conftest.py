"""Shared fixtures: the default pipeline and rule detector are built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa_engine.pipeline import Pipeline
from qa_engine.schema import Conversation, Turn
from rules.detector import RuleDetector
from rules.pack import load_rulebook

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "qa_engine" / "samples"


@pytest.fixture(scope="session")
def pipeline() -> Pipeline:
    return Pipeline.from_config()


@pytest.fixture(scope="session")
def rule_detector() -> RuleDetector:
    return RuleDetector(load_rulebook())


def conversation(*turns: tuple[str, str], cid: str = "t") -> Conversation:
    """A conversation from (role, text) pairs."""
    return Conversation(conversation_id=cid, turns=tuple(Turn(role=role, text=text) for role, text in turns))
