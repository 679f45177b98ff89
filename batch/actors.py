"""The Ray Data UDF: one actor scores whole shards with a pipeline it builds once."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from batch.shards import Shard, shard_path, write_table_atomic
from qa_engine.io import Quarantined, load
from qa_engine.tables import conversation_row, finding_rows, versions_json


class ShardScorer:
    """Callable class for ``map_batches``: the pipeline (rule packs, models) loads in
    ``__init__``, once per actor; each call scores shards and commits their outputs.

    Args:
        out: the job's output folder (shared storage when on a cluster).
        config: run config YAML path, or ``None`` for the bundled default.
    """

    def __init__(self, out: str, config: str | None = None) -> None:
        from qa_engine.config import load_pipeline  # loaded in the actor process, not the driver

        import ray

        self.out = Path(out)
        self.pipeline = load_pipeline(Path(config) if config else None)
        self.node = ray.get_runtime_context().get_node_id()  # recorded per shard in the manifest

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        summaries = [self.score_shard(Shard(path=str(p), key=str(k), size=int(s), mtime_ns=int(m)))
                     for p, k, s, m in zip(batch["path"], batch["key"], batch["size"], batch["mtime_ns"])]
        return {name: [summary[name] for summary in summaries] for name in summaries[0]} if summaries else {}

    def score_shard(self, shard: Shard) -> dict[str, Any]:
        started = time.perf_counter()
        conversations, findings, quarantined = [], [], []
        categories: Counter[str] = Counter()
        versions = versions_json(self.pipeline.versions)
        for record in load(Path(shard.path)):
            if isinstance(record, Quarantined):
                quarantined.append(record.to_dict())
                continue
            report = self.pipeline.score(record)
            conversations.append(conversation_row(report, source=shard.path, versions=versions, conversation=record))
            findings.extend(finding_rows(report))
            categories.update(f.category for f in report.violations)
        for table, rows in (("conversations", conversations), ("findings", findings), ("quarantine", quarantined)):
            write_table_atomic(rows, shard_path(self.out, table, shard))
        return {"key": shard.key, "node": self.node, "records_in": len(conversations) + len(quarantined),
                "scored": len(conversations), "quarantined": len(quarantined), "findings": len(findings),
                "violations_by_category": json.dumps(dict(sorted(categories.items())), ensure_ascii=False),
                "seconds": round(time.perf_counter() - started, 3)}
