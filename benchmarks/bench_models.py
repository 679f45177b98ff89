"""Scoring speed with the models configuration beside rules-only, on real-length conversations, in one run.

Scores the real JDDC conversations of ``../shared/corpora`` (≈ 27 turns each; the bundled
sample month when the corpora are absent) in process with both pipelines — the default
(rules + lexical baselines) and ``conf/models.yaml`` (the shipped int8 student on onnxruntime) —
through ``Pipeline.score_many`` (what ``qa-engine score`` and the Ray job run: batches of 256
conversations, the model reading all their turns in length-bucketed batches) and one conversation
at a time (``Pipeline.score``), and prints conversations/s and turns/s side by side. It then checks
that every conversation's report is identical scored alone (a fresh pipeline) and inside a batch.

    python benchmarks/bench_models.py [--seconds 20] [--corpora ../shared/corpora]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from qa_engine.config import default_config
from qa_engine.io import load
from qa_engine.pipeline import Pipeline
from qa_engine.schema import Conversation

ROOT = Path(__file__).resolve().parents[1]
TARGET = 60.0  # conversations/s with the models configuration on this 2-core machine (issue #10)


def conversations(corpora: Path) -> tuple[list[Conversation], str]:
    if (corpora / "jddc_uss_usda").exists():
        from models.corpus import conversations as corpus_conversations

        loaded = corpus_conversations(corpora)
        return [c for c in loaded if c.channel == "jd"], f"JDDC, {corpora}"
    sample = ROOT / "qa_engine" / "samples" / "sample_month.jsonl"
    return [c for c in load(sample) if isinstance(c, Conversation)], f"synthetic sample month ({sample.name})"


def measure(score: Callable[[list[Conversation]], object], items: list[Conversation], seconds: float) -> dict[str, float]:
    """Conversations/s and turns/s of ``score`` over ``items``, repeated for at least ``seconds``."""
    list(score(items[:5]))  # warm-up: sessions, caches
    done = turns = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for report in score(items):
            done += 1
        turns += sum(len(c.turns) for c in items)
    elapsed = time.perf_counter() - started
    return {"conv_s": done / elapsed, "turns_s": turns / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per configuration and path")
    parser.add_argument("--corpora", type=Path, default=ROOT.parent / "shared" / "corpora")
    args = parser.parse_args()
    from models.evaluate import models_config

    items, source = conversations(args.corpora)
    mean_turns = sum(len(c.turns) for c in items) / len(items)
    pipelines = {"rules + lexical baselines": Pipeline.from_config(default_config()),
                 "models configuration": Pipeline.from_config(models_config())}
    print(f"{len(items)} conversations from {source}, {mean_turns:.1f} turns on average; "
          f"models: {pipelines['models configuration'].versions.models}")
    print(f"{'configuration':<28} {'path':<26} {'conversations/s':>16} {'turns/s':>10}")
    results = {}
    for name, pipeline in pipelines.items():
        for path, score in (("score_many (batches of 256)", pipeline.score_many),
                            ("score (one at a time)", lambda cs, p=pipeline: map(p.score, cs))):
            results[name, path] = r = measure(score, items, args.seconds)
            print(f"{name:<28} {path:<26} {r['conv_s']:>16.1f} {r['turns_s']:>10.0f}", flush=True)
    batched = results["models configuration", "score_many (batches of 256)"]["conv_s"]
    ratio = results["rules + lexical baselines", "score_many (batches of 256)"]["conv_s"] / batched
    print(f"models configuration, batch path: {batched:.1f} conv/s (target ≥ {TARGET:.0f}); rules-only is {ratio:.1f}× faster")
    dump = {"exclude": {"versions"}}
    inside = [r.model_dump(**dump) for r in pipelines["models configuration"].score_many(items)]
    fresh = Pipeline.from_config(models_config())
    same = sum(fresh.score(c).model_dump(**dump) == report for c, report in zip(items, inside))
    print(f"reports identical scored alone (fresh pipeline) and inside a batch of 256: {same}/{len(items)}")


if __name__ == "__main__":
    main()
