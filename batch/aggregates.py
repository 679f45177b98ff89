"""Per agent, per team and per day roll-ups of the committed shard outputs."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from batch.shards import read_table, write_table_atomic

DIMENSIONS = {"by_agent": ["team", "agent_id"], "by_team": ["team"], "by_day": ["day"]}


def build_aggregates(out: Path) -> dict[str, pa.Table]:
    """Counts, mean scores, pass and violation rates, violations by category; written
    to ``aggregates/<dimension>.parquet`` and returned."""
    conversations = read_table(out, "conversations")
    findings = read_table(out, "findings")
    results: dict[str, pa.Table] = {}
    if conversations.num_rows == 0:
        return results
    conversations = conversations.append_column(
        "has_violation", pc.greater(conversations["violations"], 0))
    violations = findings.filter(pc.equal(findings["kind"], "violation")) if findings.num_rows else findings
    categories = sorted(set(violations["category"].to_pylist())) if violations.num_rows else []
    for name, keys in DIMENSIONS.items():
        grouped = conversations.group_by(keys).aggregate([
            ("conversation_id", "count"), ("score", "mean"), ("passed", "mean"), ("has_violation", "mean"),
            ("violations", "sum")])
        grouped = grouped.rename_columns([
            {"conversation_id_count": "conversations", "score_mean": "mean_score", "passed_mean": "pass_rate",
             "has_violation_mean": "violation_rate", "violations_sum": "violations"}.get(c, c)
            for c in grouped.column_names])
        rows = {tuple(r[k] for k in keys): r for r in grouped.to_pylist()}
        for row in rows.values():
            row.update({f"violations_{c}": 0 for c in categories})
        if violations.num_rows:
            counts = violations.group_by([*keys, "category"]).aggregate([("finding_index", "count")])
            for r in counts.to_pylist():
                rows[tuple(r[k] for k in keys)][f"violations_{r['category']}"] = r["finding_index_count"]
        ordered = sorted(rows.values(), key=lambda r: tuple("" if r[k] is None else str(r[k]) for k in keys))
        write_table_atomic(ordered, out / "aggregates" / f"{name}.parquet")
        results[name] = pa.Table.from_pylist(ordered)
    return results
