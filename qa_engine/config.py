"""Run configuration loading (an edge of qa_engine: reads package data or a config file)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from qa_engine.pipeline import Pipeline, PipelineConfig
from qa_engine.scorecard import load_scorecard


def parse_config(text: str) -> PipelineConfig:
    return PipelineConfig.model_validate(yaml.safe_load(text))


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
