"""Rule packs: YAML data validated by pydantic, versioned and hashed.

A pack is a file ``rules/packs/<name>.yaml``; its ``defaults`` apply to every rule lacking
the field, except ``exceptions``, where the pack's and the rule's own lists add up. Loading refuses a malformed pack as a whole with the file, the rule id and the
reason (codes E010–E012), so a bad edit never half-loads. Adding a term is a data change.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qa_engine.errors import ErrorCode, RulePackError
from qa_engine.findings import Severity
from qa_engine.schema import Role
from rules.validators import VALIDATORS

BUNDLED_PACKS = Path(__file__).parent / "packs"


def _require_compiles(pattern: str, what: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{what} {pattern!r} does not compile: {exc}") from None


class RegexSpec(BaseModel):
    """A structured pattern, run on the named view of the normalised text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern: str
    view: Literal["compact", "folded"] = "compact"
    validator: str | None = None
    #: substrings of which at least one must occur for the regex to be tried (a cheap pre-filter)
    requires: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _compiles(self) -> RegexSpec:
        _require_compiles(self.pattern, "regex")
        if self.validator is not None and self.validator not in VALIDATORS:
            raise ValueError(f"unknown validator {self.validator!r}; known: {', '.join(sorted(VALIDATORS))}")
        return self


class ExceptionSpec(BaseModel):
    """A context in which a hit is not a violation: a phrase or a regex on the compact view."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phrase: str | None = None
    pattern: str | None = None
    reason: str = Field(min_length=1)

    @model_validator(mode="after")
    def _one_of(self) -> ExceptionSpec:
        if (self.phrase is None) == (self.pattern is None):
            raise ValueError("an exception needs exactly one of 'phrase' or 'pattern'")
        if self.pattern is not None:
            _require_compiles(self.pattern, "exception regex")
        return self


CATEGORY_PATTERN = r"^[a-z][a-z0-9_]*$"


class MaskSpec(BaseModel):
    """How exports hide a hit of this rule: keep a head and a tail, replace the rest by ``****``.

    ``keep_through`` keeps the head up to and including the first match of that regex instead
    (an address keeps its city and district: 北京市朝阳区****).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_head: int = Field(default=0, ge=0)
    keep_tail: int = Field(default=0, ge=0)
    keep_through: str | None = None

    @model_validator(mode="after")
    def _compiles(self) -> MaskSpec:
        if self.keep_through is not None:
            _require_compiles(self.keep_through, "keep_through regex")
        return self


class Rule(BaseModel):
    """One compliance rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
    description: str = Field(min_length=1)
    #: what the agent is shown (Chinese); the English description when absent
    message: str | None = None
    category: str = Field(pattern=CATEGORY_PATTERN)  # the pack's category (one owner: the pack file)
    severity: Literal[Severity.CRITICAL, Severity.MAJOR, Severity.MINOR]
    citation: str = Field(min_length=1)
    terms: tuple[str, ...] = ()
    regexes: tuple[RegexSpec, ...] = ()
    exceptions: tuple[ExceptionSpec, ...] = ()
    roles: tuple[Role, ...] = (Role.AGENT,)
    negatable: bool = True
    rewrite: str = Field(min_length=1)
    #: personal data: how reports mask what this rule matches (in every turn, any speaker)
    mask: MaskSpec | None = None
    #: False for a privacy rule whose match holds no personal data itself (asking for a verification code)
    personal_data: bool = True

    @model_validator(mode="after")
    def _has_patterns(self) -> Rule:
        if not self.terms and not self.regexes:
            raise ValueError("a rule needs at least one term or regex")
        if any(not term.strip() for term in self.terms):
            raise ValueError("empty term")
        if self.category == "privacy" and self.personal_data and self.mask is None:
            raise ValueError("a privacy rule needs a 'mask' spec, so reports can hide what it matches "
                             "(or 'personal_data: false' when its match holds none)")
        return self


class RulePack(BaseModel):
    """A versioned set of rules from one file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pack: str = Field(pattern=r"^[a-z0-9_]+$")
    version: str = Field(min_length=1)
    #: what every rule of the pack emits; the scorecard must score it (checked when a pipeline is built)
    category: str = Field(pattern=CATEGORY_PATTERN)
    description: str = ""
    rules: tuple[Rule, ...]
    source: str = ""
    sha256: str = ""


def parse_pack(text: str, source: str) -> RulePack:
    """Validate one pack's YAML text. ``source`` names it in errors (usually the path)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulePackError(ErrorCode.E011, source=source, detail=f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RulePackError(ErrorCode.E011, source=source, detail="expected a mapping at the top level")
    for key in ("pack", "version", "category", "rules"):
        if key not in data:
            raise RulePackError(ErrorCode.E011, source=source, detail=f"missing '{key}'")
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise RulePackError(ErrorCode.E011, source=source, detail="'rules' must be a non-empty list")
    if not isinstance(data["category"], str) or not re.fullmatch(CATEGORY_PATTERN, data["category"]):
        raise RulePackError(ErrorCode.E011, source=source,
                            detail=f"category {data['category']!r} must be lower-case letters, digits and _")
    defaults = {**(data.get("defaults") or {}), "category": data["category"]}
    rules = [_parse_rule(raw, index, defaults, data["pack"], source) for index, raw in enumerate(raw_rules)]
    header = {k: v for k, v in data.items() if k not in ("rules", "defaults")}
    try:
        return RulePack(**header, rules=tuple(rules), source=source,
                        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())
    except ValidationError as exc:
        raise RulePackError(ErrorCode.E011, source=source, detail=_first_error(exc)) from None


def _parse_rule(raw: Any, index: int, defaults: dict[str, Any], pack: str, source: str) -> Rule:
    rule_id = raw.get("id", f"#{index}") if isinstance(raw, dict) else f"#{index}"
    if not isinstance(raw, dict):
        raise RulePackError(ErrorCode.E010, source=source, rule_id=rule_id, detail="a rule must be a mapping")
    if raw.get("category", defaults["category"]) != defaults["category"]:
        raise RulePackError(ErrorCode.E010, source=source, rule_id=rule_id,
                            detail=f"category {raw['category']!r} differs from the pack's category "
                                   f"{defaults['category']!r} (one category a pack: put the rule in its own pack)")
    try:
        exceptions = [*defaults.get("exceptions", ()), *raw.get("exceptions", ())]
        rule = Rule.model_validate({**defaults, **raw, "exceptions": exceptions})
    except ValidationError as exc:
        raise RulePackError(ErrorCode.E010, source=source, rule_id=rule_id, detail=_first_error(exc)) from None
    if not rule.id.startswith(f"{pack}."):
        raise RulePackError(ErrorCode.E010, source=source, rule_id=rule_id,
                            detail=f"rule ids of pack '{pack}' must start with '{pack}.'")
    return rule


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


class RuleBook(BaseModel):
    """All packs in force, with their versions; rule ids are unique across packs."""

    model_config = ConfigDict(frozen=True)

    packs: tuple[RulePack, ...]

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleBook:
        seen: dict[str, str] = {}
        for pack in self.packs:
            for rule in pack.rules:
                if rule.id in seen:
                    raise RulePackError(ErrorCode.E012, rule_id=rule.id, source=pack.source, first=seen[rule.id])
                seen[rule.id] = pack.source
        return self

    @property
    def rules(self) -> list[Rule]:
        return [rule for pack in self.packs for rule in pack.rules]

    @property
    def categories(self) -> list[str]:
        """The categories the packs emit, in pack order."""
        return list(dict.fromkeys(pack.category for pack in self.packs))

    @property
    def versions(self) -> dict[str, str]:
        """Each pack's declared version plus a hash of its bytes, e.g. ``2026.11.0+3fa2b1c9``."""
        return {pack.pack: f"{pack.version}+{pack.sha256[:8]}" for pack in self.packs}


def pack_files(directory: Path) -> list[Path]:
    """Pack files in a folder: ``*.yaml`` except the golden ``*.cases.yaml``."""
    return sorted(p for p in directory.glob("*.yaml") if not p.name.endswith(".cases.yaml"))


def load_rulebook(paths: Iterable[Path] | None = None) -> RuleBook:
    """Load pack files (or every pack in folders given); the bundled packs by default."""
    files: list[Path] = []
    for path in [BUNDLED_PACKS] if paths is None else paths:
        path = Path(path)
        files.extend(pack_files(path) if path.is_dir() else [path])
    if not files:
        raise RulePackError(ErrorCode.E011, source=", ".join(map(str, paths or [])), detail="no rule pack files found")
    packs = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RulePackError(ErrorCode.E011, source=str(file), detail=str(exc)) from None
        pack = parse_pack(text, str(file))
        if pack.pack != file.stem:
            raise RulePackError(ErrorCode.E011, source=str(file), detail=f"pack name '{pack.pack}' differs from the file name")
        packs.append(pack)
    return RuleBook(packs=tuple(packs))
