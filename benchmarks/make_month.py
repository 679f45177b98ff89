"""Build a month of transcripts of any size by resampling hand-checked source dialogues.

Each output conversation is a source dialogue with a new id, agent, team and start time
(turn timestamps follow the dialogue's own offsets). For load tests and the bundled demo
sample only — never for accuracy claims: resampling repeats the same dialogues.

    python benchmarks/make_month.py -n 100000 -o /tmp/month.jsonl
    python benchmarks/make_month.py -n 100000 --shards 30 -o /tmp/month/     # one file per shard
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT / "qa_engine" / "samples" / "synthetic_dialogues.yaml"
TEAMS = {"售前一组": ["a101", "a102", "a103", "a104"], "售后一组": ["a201", "a202", "a203", "a204"],
         "售后二组": ["a301", "a302", "a303", "a304"]}
CHINA = timezone(timedelta(hours=8))


def build_month(dialogues: list[dict], size: int, month: str, seed: int) -> list[dict]:
    """``size`` conversations; every source dialogue appears at least once when size allows."""
    rng = random.Random(seed)
    year, number = (int(part) for part in month.split("-"))
    first = datetime(year, number, 1, tzinfo=CHINA)
    days = ((first.replace(month=number % 12 + 1, year=year + number // 12)) - first).days
    agents = [(team, agent) for team, members in TEAMS.items() for agent in members]
    order = list(range(len(dialogues)))
    rng.shuffle(order)
    month_rows = []
    for index in range(size):
        dialogue = dialogues[order[index]] if index < len(order) else rng.choice(dialogues)
        team, agent = rng.choice(agents)
        start = first + timedelta(days=rng.randrange(days), hours=rng.randint(9, 21), minutes=rng.randrange(60),
                                  seconds=rng.randrange(60))
        month_rows.append({
            "conversation_id": f"{month}-{index:06d}",
            "channel": dialogue.get("channel"),
            "agent_id": agent,
            "team": team,
            "start_time": start.isoformat(),
            "turns": [{"role": t["role"], "text": t["text"],
                       "timestamp": (start + timedelta(seconds=t["offset_s"])).isoformat()}
                      for t in dialogue["turns"]],
            "metadata": {"source_dialogue": dialogue["id"], "scenario": dialogue.get("scenario"),
                         "labels": dialogue.get("labels", {})},
        })
    return month_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--size", type=int, default=300)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--month", default="2026-10")
    parser.add_argument("--seed", type=int, default=20261001)
    parser.add_argument("--shards", type=int, default=1, help="write this many JSONL files into OUTPUT (a folder)")
    args = parser.parse_args()
    source = yaml.safe_load(args.source.read_text(encoding="utf-8"))
    rows = build_month(source["dialogues"], args.size, args.month, args.seed)
    if args.shards > 1:
        for shard in range(args.shards):
            write_jsonl(rows[shard::args.shards], args.output / f"shard-{shard:03d}.jsonl")
    else:
        write_jsonl(rows, args.output)
    print(f"wrote {len(rows)} conversations from {len(source['dialogues'])} source dialogues to {args.output}")


def write_jsonl(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
