"""Service settings: a YAML file and/or environment variables (read only here, at the edge)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from serve.warning_log import parse_target

ENV_PREFIX = "QA_ENGINE_"
_LISTS = ("tokens", "auditor_tokens")  # comma-separated in the environment


class ServeSettings(BaseModel):
    """Everything the service needs; environment variables override the file.

    Environment: ``QA_ENGINE_TOKENS`` (comma-separated agent bearer tokens),
    ``QA_ENGINE_AUDITOR_TOKENS`` (comma-separated auditor tokens, for the audit exports),
    ``QA_ENGINE_WARNING_LOG``, ``QA_ENGINE_MAX_BODY_BYTES``, ``QA_ENGINE_RATE_LIMIT_PER_MINUTE``,
    ``QA_ENGINE_RELOAD_INTERVAL_S``, ``QA_ENGINE_ALLOW_PACK_REMOVAL``, ``QA_ENGINE_PIPELINE_CONFIG``.
    """

    model_config = ConfigDict(extra="forbid")

    tokens: list[str] = Field(default_factory=list,
                              description="agent bearer tokens (checks, live sessions); at least one")
    auditor_tokens: list[str] = Field(default_factory=list,
                                      description="auditor bearer tokens: the only ones that may export the audit log")
    max_body_bytes: int = Field(64 * 1024, gt=0, description="largest HTTP body or WebSocket message")
    rate_limit_per_minute: int = Field(600, gt=0, description="requests per token per minute")
    warning_log: str = Field("qa-engine-warnings.sqlite3",
                             description="a file path or sqlite:///path (embedded, one per process), or "
                                         "postgresql://… shared by every replica")
    reload_interval_s: float = Field(2.0, ge=0, description="how often rule packs are checked; 0 = never")
    allow_pack_removal: bool = Field(False, description="accept a reload in which a rule pack or category "
                                                        "disappears (refused by default, like a malformed pack)")
    pipeline_config: str | None = None

    @model_validator(mode="after")
    def _roles_apart(self) -> ServeSettings:
        shared = set(self.tokens) & set(self.auditor_tokens)
        if shared:
            raise ValueError(f"{len(shared)} token(s) are both agent and auditor tokens: give auditors their own")
        return self

    @field_validator("warning_log")
    @classmethod
    def _warning_log_target(cls, value: str) -> str:
        parse_target(value)
        return value

    @classmethod
    def load(cls, path: Path | None = None, environ: dict[str, str] | None = None) -> ServeSettings:
        data = (yaml.safe_load(path.read_text(encoding="utf-8")) if path else None) or {}
        environ = os.environ if environ is None else environ
        for name in cls.model_fields:
            value = environ.get(ENV_PREFIX + name.upper())
            if value is not None:
                data[name] = [t.strip() for t in value.split(",") if t.strip()] if name in _LISTS else value
        settings = cls.model_validate(data or {})
        if not settings.tokens:
            raise ValueError(f"no bearer tokens configured: set {ENV_PREFIX}TOKENS or 'tokens' in the config file")
        return settings
