"""Service settings: a YAML file and/or environment variables (read only here, at the edge)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from serve.warning_log import parse_target

ENV_PREFIX = "QA_ENGINE_"


class ServeSettings(BaseModel):
    """Everything the service needs; environment variables override the file.

    Environment: ``QA_ENGINE_TOKENS`` (comma-separated bearer tokens), ``QA_ENGINE_WARNING_LOG``,
    ``QA_ENGINE_MAX_BODY_BYTES``, ``QA_ENGINE_RATE_LIMIT_PER_MINUTE``, ``QA_ENGINE_RELOAD_INTERVAL_S``,
    ``QA_ENGINE_PIPELINE_CONFIG``.
    """

    model_config = ConfigDict(extra="forbid")

    tokens: list[str] = Field(default_factory=list, description="accepted bearer tokens; at least one")
    max_body_bytes: int = Field(64 * 1024, gt=0)
    rate_limit_per_minute: int = Field(600, gt=0, description="requests per token per minute")
    warning_log: str = Field("qa-engine-warnings.sqlite3",
                             description="a file path or sqlite:///path (embedded, one per process), or "
                                         "postgresql://… shared by every replica")
    reload_interval_s: float = Field(2.0, ge=0, description="how often rule packs are checked; 0 = never")
    pipeline_config: str | None = None

    @field_validator("warning_log")
    @classmethod
    def _warning_log_target(cls, value: str) -> str:
        parse_target(value)
        return value

    @classmethod
    def load(cls, path: Path | None = None, environ: dict[str, str] | None = None) -> ServeSettings:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path else {}
        environ = os.environ if environ is None else environ
        for name in cls.model_fields:
            value = environ.get(ENV_PREFIX + name.upper())
            if value is not None:
                data[name] = [t.strip() for t in value.split(",") if t.strip()] if name == "tokens" else value
        settings = cls.model_validate(data or {})
        if not settings.tokens:
            raise ValueError(f"no bearer tokens configured: set {ENV_PREFIX}TOKENS or 'tokens' in the config file")
        return settings
