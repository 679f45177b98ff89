"""Run configuration loading (an edge of qa_engine: reads package data or a config file).

A run config holds the pipeline (``detectors``, ``scorecard``) and, optionally, the input
``limits`` (`qa_engine.schema.Limits` fields, e.g. ``limits: {max_turns: 500}``).
"""

from __future__ import annotations

from dataclasses import fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from qa_engine.errors import ErrorCode, QAEngineError
from qa_engine.pipeline import Pipeline, PipelineConfig
from qa_engine.schema import Limits
from qa_engine.scorecard import load_scorecard

LIMITS_KEY = "limits"


def _read(text: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    return data if isinstance(data, dict) else {}


def parse_config(text: str) -> PipelineConfig:
    data = _read(text)
    data.pop(LIMITS_KEY, None)
    return PipelineConfig.model_validate(data)


def default_config() -> PipelineConfig:
    return parse_config(resources.files("qa_engine").joinpath("conf/default.yaml").read_text(encoding="utf-8"))


def load_pipeline(config: Path | None = None) -> Pipeline:
    """The pipeline a config file describes (its scorecard path relative to it), or the default."""
    if config is None:
        return Pipeline.from_config()
    run = parse_config(config.read_text(encoding="utf-8"))
    scorecard = None
    if run.scorecard:
        path = config.parent / run.scorecard
        scorecard = load_scorecard(path.read_text(encoding="utf-8"), str(path))
    return Pipeline.from_config(run, scorecard)


def load_limits(config: Path | None = None, **overrides: int | None) -> Limits:
    """The input limits of a config file's ``limits:`` section (defaults for the rest), then
    ``overrides`` that are not ``None`` (command-line options).

    Raises:
        QAEngineError: E022 naming an unknown limit or a value that is not a positive integer.
    """
    section = _read(config.read_text(encoding="utf-8")).get(LIMITS_KEY) if config is not None else None
    values = {**(section or {}), **{k: v for k, v in overrides.items() if v is not None}}
    known = {f.name for f in fields(Limits)}
    for name, value in values.items():
        if name not in known:
            raise QAEngineError(ErrorCode.E022, source=str(config or 'options'), detail=f"unknown limit '{name}' "
                                                                            f"(known: {', '.join(sorted(known))})")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise QAEngineError(ErrorCode.E022, source=str(config or 'options'), detail=f"limit '{name}' must be a positive integer")
    return replace(Limits(), **values)
