"""One explicit Arrow schema per output table.

Every shard of a table is written with the same schema, so a column that is null in one shard
(no timestamps, no quarantined record) is still typed there and ``pyarrow.dataset.dataset(out/
<table>)`` — or Spark, DuckDB, pandas — reads the folder as one dataset. The schemas follow
the result types (`Finding`, `ServiceMetrics`, `Quarantined`), so a field added there is a
column here.
"""

from __future__ import annotations

import dataclasses
import typing
from enum import Enum
from typing import Any

import pyarrow as pa
from pydantic import BaseModel

from qa_engine.findings import Finding, ServiceMetrics
from qa_engine.io import Quarantined

_SCALARS = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
_TURN = pa.struct([("role", pa.string()), ("text", pa.string()), ("timestamp", pa.string())])
_COUNT = pa.int64()
_RATE = pa.float64()


def _arrow_type(annotation: Any) -> pa.DataType:
    """``str | None`` → string, an enum → its value as string, ``int`` → int64, …"""
    kind = next((a for a in typing.get_args(annotation) if a is not type(None)), annotation)
    return pa.string() if isinstance(kind, type) and issubclass(kind, Enum) else _SCALARS[kind]


def _model_fields(model: type[BaseModel], prefix: str = "") -> list[pa.Field]:
    return [pa.field(prefix + name, _arrow_type(info.annotation)) for name, info in model.model_fields.items()]


def conversations_schema(sections: list[str]) -> pa.Schema:
    """`qa_engine.tables.conversation_row`; ``sections`` are the scorecard's section names."""
    return pa.schema([
        *(pa.field(name, pa.string()) for name in ("conversation_id", "agent_id", "team", "channel", "customer_id",
                                                    "start_time", "day")),
        pa.field("score", pa.float64()), pa.field("passed", pa.bool_()),
        pa.field("auto_fail_reasons", pa.list_(pa.string())),
        *(pa.field(f"section_{name}", pa.float64()) for name in sorted(sections)),
        pa.field("resolution", pa.string()), pa.field("empathy", pa.string()),
        *_model_fields(ServiceMetrics, "metric_"),
        pa.field("violations", _COUNT), pa.field("versions", pa.string()), pa.field("source", pa.string()),
        pa.field("transcript", pa.list_(_TURN)),
    ])


FINDINGS = pa.schema([
    *(pa.field(name, pa.string()) for name in ("conversation_id", "agent_id", "team", "channel", "day")),
    pa.field("finding_index", _COUNT), pa.field("finding_id", pa.string()), *_model_fields(Finding),
])

QUARANTINE = pa.schema([pa.field(f.name, _arrow_type(hint))
                        for f, hint in zip(dataclasses.fields(Quarantined), typing.get_type_hints(Quarantined).values())])

#: per-shard partial roll-up by (team, agent, day): sums the driver merges without reading rows
PARTIALS = pa.schema([
    pa.field("team", pa.string()), pa.field("agent_id", pa.string()), pa.field("day", pa.string()),
    pa.field("conversations", _COUNT), pa.field("score_sum", pa.float64()), pa.field("passed", _COUNT),
    pa.field("with_violations", _COUNT), pa.field("violations", _COUNT),
    pa.field("violations_by_category", pa.map_(pa.string(), _COUNT)),
])


def aggregates_schema(keys: list[str], categories: list[str]) -> pa.Schema:
    """One roll-up (``by_agent``, ``by_team``, ``by_day``): its keys, then the measures."""
    return pa.schema([
        *(pa.field(key, pa.string()) for key in keys),
        pa.field("conversations", _COUNT), pa.field("mean_score", _RATE), pa.field("pass_rate", _RATE),
        pa.field("violation_rate", _RATE), pa.field("violations", _COUNT),
        *(pa.field(f"violations_{c}", _COUNT) for c in categories),
        pa.field("fcr_measured", _COUNT), pa.field("fcr_rate", _RATE), pa.field("fcr_note", pa.string()),
    ])
