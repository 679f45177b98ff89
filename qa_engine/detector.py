"""The detector interface and registry (floor: qa_engine; imports no sibling package).

Every detector, rule-based or model-based, has one method: ``detect(conversation) ->
list[Finding]``; the optional protocols below add batching (``detect_many``), explanations,
declared categories, data versions and reloading. Detectors are made by name from a registry of factories ("qa.rules.v1",
"qa.empathy.lexical.v1"); packages outside ``qa_engine`` (rules, models) add factories
through the ``qa_engine.detectors`` entry-point group, so the core never imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from qa_engine.errors import ErrorCode, RegistryError
from qa_engine.findings import Finding
from qa_engine.schema import Conversation

ENTRY_POINT_GROUP = "qa_engine.detectors"


@runtime_checkable
class Detector(Protocol):
    """Finds evidence in a conversation. Pure: same conversation, same findings."""

    name: str
    version: str

    def detect(self, conversation: Conversation) -> list[Finding]: ...


@runtime_checkable
class Batching(Detector, Protocol):
    """A detector that scores several conversations at once faster than one by one (the rule
    detector matches all their turns in one pass; model detectors fill length-bucketed batches).
    ``detect_many(cs)[i]`` must equal ``detect(cs[i])``: a conversation's findings never depend on
    the conversations batched with it."""

    def detect_many(self, conversations: Sequence[Conversation]) -> list[list[Finding]]: ...


@runtime_checkable
class TurnScoped(Protocol):
    """A detector that judges single turns, reading the others only as context (the rule packs).
    ``detect_turn(c, i)`` must equal the findings of ``detect(c)`` on turn ``i``: the live path asks
    for the draft alone instead of re-judging the whole conversation on every keystroke."""

    def detect_turn(self, conversation: Conversation, index: int) -> list[Finding]: ...


@runtime_checkable
class Explainer(Protocol):
    """A detector that can also return the hits it suppressed, each with its reason."""

    def explain(self, conversation: Conversation) -> list[Finding]: ...


@runtime_checkable
class Categorised(Protocol):
    """A detector that declares the violation categories it emits (data it loaded: rule packs); the
    pipeline refuses to run when its scorecard does not score one of them."""

    @property
    def categories(self) -> list[str]: ...


@runtime_checkable
class Versioned(Protocol):
    """A detector that reports versions of the data it loaded: rule packs by pack name, model
    artefacts as ``model.<name>`` (results record them under ``rule_packs`` and ``models``)."""

    def data_versions(self) -> dict[str, str]: ...


@runtime_checkable
class Reloadable(Protocol):
    """A detector whose data can be re-read in place (the live service watches its files). ``check``
    vets the new data's categories before it is swapped in (raising keeps the old data); without
    ``allow_removal`` new data that drops a pack or category is refused the same way."""

    def reload(self, check: Callable[[list[str]], None] | None = None, allow_removal: bool = False) -> object: ...

    def watched_files(self) -> list[str]: ...


DetectorFactory = Callable[..., Detector]


class DetectorRegistry:
    """Name → factory. Local registrations win over entry points of the same name."""

    def __init__(self, group: str = ENTRY_POINT_GROUP) -> None:
        self._group = group
        self._factories: dict[str, DetectorFactory] = {}

    def register(self, name: str) -> Callable[[DetectorFactory], DetectorFactory]:
        def decorator(factory: DetectorFactory) -> DetectorFactory:
            self._factories[name] = factory
            return factory

        return decorator

    def names(self) -> list[str]:
        return sorted({*self._factories, *(ep.name for ep in entry_points(group=self._group))})

    def make(self, name: str, **config: Any) -> Detector:
        factory = self._factories.get(name)
        if factory is None:
            found = [ep for ep in entry_points(group=self._group) if ep.name == name]
            if not found:
                raise RegistryError(ErrorCode.E030, name=name, known=", ".join(self.names()))
            factory = found[0].load()
        return factory(**config)


detectors = DetectorRegistry()
