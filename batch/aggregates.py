"""Per agent, per team and per day roll-ups of the committed shards.

Counts, scores and violations add up the shards' small ``partials/`` tables (never the rows);
first-contact resolution, which looks across shards for the customer's next contact, reads
only the few conversation columns it needs.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from batch.schemas import aggregates_schema
from batch.shards import shard_path, write_table_atomic
from qa_engine.tables import FCR_WINDOW_DAYS, fcr_note, first_contact_resolution

DIMENSIONS = {"by_agent": ["team", "agent_id"], "by_team": ["team"], "by_day": ["day"]}
_FCR_COLUMNS = ["team", "agent_id", "day", "customer_id", "start_time", "resolution"]


def build_aggregates(out: Path, shards: list[str], categories: list[str],
                     fcr_window_days: int = FCR_WINDOW_DAYS) -> dict[str, pa.Table]:
    """Conversations, mean score, pass and violation rates, violations by category and first-contact
    resolution over the committed ``shards`` (keys); written to ``aggregates/<dimension>.parquet``
    (``categories``: the violation categories given a column each, besides any the shards found) and returned."""
    if not shards:
        return {}
    partials = pq.read_table([shard_path(out, "partials", key) for key in shards]).to_pylist()
    categories = sorted({*categories, *(c for p in partials for c, _ in p["violations_by_category"])})
    contacts = pq.read_table([shard_path(out, "conversations", key) for key in shards], columns=_FCR_COLUMNS).to_pydict()
    flags = first_contact_resolution(list(zip(contacts["customer_id"], contacts["start_time"], contacts["resolution"])),
                                     fcr_window_days)
    results: dict[str, pa.Table] = {}
    for name, keys in DIMENSIONS.items():
        sums: dict[tuple[Any, ...], Counter[str]] = defaultdict(Counter)
        scores: dict[tuple[Any, ...], float] = defaultdict(float)
        for partial in partials:
            key = tuple(partial[k] for k in keys)
            sums[key].update({m: partial[m] for m in ("conversations", "passed", "with_violations", "violations")})
            sums[key].update({f"violations_{c}": n for c, n in partial["violations_by_category"]})
            scores[key] += partial["score_sum"]
        for index, flag in enumerate(flags):
            key = tuple(contacts[k][index] for k in keys)
            sums[key].update(with_customer=contacts["customer_id"][index] is not None, fcr_measured=flag is not None,
                             fcr_resolved=bool(flag))
        rows = [_row(keys, key, counts, scores[key], categories, fcr_window_days) for key, counts in
                sorted(sums.items(), key=lambda item: tuple("" if k is None else str(k) for k in item[0]))]
        schema = aggregates_schema(keys, categories)
        write_table_atomic(rows, out / "aggregates" / f"{name}.parquet", schema)
        results[name] = pa.Table.from_pylist(rows, schema=schema)
    return results


def _row(keys: list[str], key: tuple[Any, ...], counts: Counter[str], score_sum: float, categories: list[str],
         fcr_window_days: int) -> dict[str, Any]:
    n = counts["conversations"]
    return {**dict(zip(keys, key)), "conversations": n, "mean_score": score_sum / n, "pass_rate": counts["passed"] / n,
            "violation_rate": counts["with_violations"] / n, "violations": counts["violations"],
            **{f"violations_{c}": counts[f"violations_{c}"] for c in categories},
            "fcr_measured": counts["fcr_measured"],
            "fcr_rate": counts["fcr_resolved"] / counts["fcr_measured"] if counts["fcr_measured"] else None,
            "fcr_note": fcr_note(n, counts["with_customer"], counts["fcr_measured"], fcr_window_days)}
