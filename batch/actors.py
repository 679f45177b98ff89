"""The scoring actor: scores whole shards with a pipeline it builds once."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from batch.aggregates import build_aggregates
from batch.schemas import FINDINGS, PARTIALS, QUARANTINE, conversations_schema
from batch.shards import Shard, shard_path, write_table_atomic
from qa_engine.errors import RecordError
from qa_engine.io import FileLoad, Quarantined, load_file
from qa_engine.tables import conversation_row, finding_rows, versions_json


class ShardScorer:
    """A Ray actor's class (``batch.job``): the pipeline (rule packs, models) loads in ``__init__``,
    once per actor; each `score_shard` call scores one shard and commits its outputs.

    An actor that Ray gave a GPU (``batch.job.actor_gpus``) sees only that one, and model
    detectors with ``device: auto`` run there.

    Args:
        out: the job's output folder (shared storage when on a cluster).
        config: run config YAML path, or ``None`` for the bundled default.
    """

    def __init__(self, out: str, config: str | None = None) -> None:
        from qa_engine.config import load_pipeline  # loaded in the actor process, not the driver

        import ray

        self.out = Path(out)
        self.pipeline = load_pipeline(Path(config) if config else None)
        self.conversations_schema = conversations_schema(list(self.pipeline.scorecard.sections))
        self.node = ray.get_runtime_context().get_node_id()  # recorded per shard in the manifest

    def score_shard(self, shard: Shard) -> dict[str, Any]:
        started = time.perf_counter()
        conversations, findings, quarantined = [], [], []
        categories: Counter[str] = Counter()
        versions = versions_json(self.pipeline.versions)
        loaded = _load(Path(shard.path))
        quarantined = [record.to_dict() for record in loaded.quarantined]
        for record, report in zip(loaded.conversations, self.pipeline.score_many(loaded.conversations), strict=True):
            conversations.append(conversation_row(report, source=shard.path, versions=versions, conversation=record))
            findings.extend(finding_rows(report))
            categories.update(f.category for f in report.violations)
        for table, rows, schema in (("conversations", conversations, self.conversations_schema),
                                    ("findings", findings, FINDINGS), ("quarantine", quarantined, QUARANTINE),
                                    ("partials", partial_rollup(conversations, findings), PARTIALS)):
            write_table_atomic(rows, shard_path(self.out, table, shard), schema)
        return {"key": shard.key, "node": self.node, "records_in": loaded.records_read,
                "records_scored": loaded.records_scored, "records_quarantined": loaded.records_quarantined,
                "scored": len(conversations), "quarantined": len(quarantined), "findings": len(findings),
                "violations_by_category": dict(sorted(categories.items())),
                "seconds": round(time.perf_counter() - started, 3)}

    def aggregate(self, shards: list[str], categories: list[str], fcr_window_days: int) -> None:
        """`build_aggregates` here, not in the driver: it reads columns of every shard."""
        build_aggregates(self.out, shards, categories, fcr_window_days)


def _load(path: Path) -> FileLoad:
    """What `qa-engine score` reads from ``path`` (records counted as read); a file of an unknown
    format, which ``score`` refuses up front, is quarantined whole here (it holds no records)."""
    try:
        return load_file(path)
    except RecordError as exc:
        return FileLoad(str(path), [], [Quarantined(str(path), None, exc.code.name, str(exc), records=0)], 0, 0)


def partial_rollup(conversations: list[dict[str, Any]], findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The shard's sums by (team, agent, day): what the aggregates add up without reading any row again."""
    keys = ("team", "agent_id", "day")
    sums: dict[tuple[Any, ...], Counter[str]] = defaultdict(Counter)
    scores: dict[tuple[Any, ...], float] = defaultdict(float)
    categories: dict[tuple[Any, ...], Counter[str]] = defaultdict(Counter)
    for row in conversations:
        key = tuple(row[k] for k in keys)
        sums[key].update(conversations=1, passed=int(row["passed"]), with_violations=int(row["violations"] > 0),
                         violations=row["violations"])
        scores[key] += row["score"]
    for finding in findings:
        if finding["kind"] == "violation":
            categories[tuple(finding[k] for k in keys)][finding["category"]] += 1
    return [{**dict(zip(keys, key)), **{m: counts[m] for m in ("conversations", "passed", "with_violations",
                                                               "violations")},
             "score_sum": scores[key], "violations_by_category": sorted(categories[key].items())}
            for key, counts in sums.items()]
