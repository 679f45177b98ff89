"""Run configuration loading (floor: qa_engine; reads package data or a given YAML text)."""

from __future__ import annotations

from importlib import resources

import yaml

from qa_engine.pipeline import PipelineConfig


def parse_config(text: str) -> PipelineConfig:
    return PipelineConfig.model_validate(yaml.safe_load(text))


def default_config() -> PipelineConfig:
    return parse_config(resources.files("qa_engine").joinpath("conf/default.yaml").read_text(encoding="utf-8"))
