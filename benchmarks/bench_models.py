"""Scoring speed with the models configuration beside rules-only, on real-length conversations, in one run.

Scores the real JDDC / ECD conversations of ``../shared/corpora`` (≈ 27 turns each; the bundled
sample month when the corpora are absent) in process with both pipelines — the default
(rules + lexical baselines) and ``conf/models.yaml`` (the shipped int8 student on onnxruntime) —
and prints conversations/s and turns/s side by side. It then scores a sample of conversations
again one at a time and inside the whole run and checks their labels are identical.

    python benchmarks/bench_models.py [--seconds 20] [--corpora ../shared/corpora]
"""

from __future__ import annotations

import argparse
import time
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


def measure(pipeline: Pipeline, items: list[Conversation], seconds: float) -> dict[str, float]:
    for conversation in items[:5]:
        pipeline.score(conversation)
    done = turns = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for conversation in items:
            pipeline.score(conversation)
            done += 1
            turns += len(conversation.turns)
            if time.perf_counter() - started >= seconds:
                break
    elapsed = time.perf_counter() - started
    return {"conv_s": done / elapsed, "turns_s": turns / elapsed}


def labels(pipeline: Pipeline, conversation: Conversation) -> tuple:
    report = pipeline.score(conversation)
    return (report.resolution, report.empathy, round(report.score, 6),
            tuple((f.rule_id, f.turn, f.label, f.suppressed_by) for f in report.findings))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per configuration")
    parser.add_argument("--corpora", type=Path, default=ROOT.parent / "shared" / "corpora")
    args = parser.parse_args()
    from models.evaluate import models_config

    items, source = conversations(args.corpora)
    mean_turns = sum(len(c.turns) for c in items) / len(items)
    rules_only = Pipeline.from_config(default_config())
    with_models = Pipeline.from_config(models_config())
    print(f"{len(items)} conversations from {source}, {mean_turns:.1f} turns on average; "
          f"models: {with_models.versions.models}")
    results = {"rules + lexical baselines": measure(rules_only, items, args.seconds),
               "models configuration": measure(with_models, items, args.seconds)}
    print(f"{'configuration':<28} {'conversations/s':>16} {'turns/s':>10}")
    for name, r in results.items():
        print(f"{name:<28} {r['conv_s']:>16.1f} {r['turns_s']:>10.0f}")
    ratio = results["rules + lexical baselines"]["conv_s"] / results["models configuration"]["conv_s"]
    print(f"models configuration: {results['models configuration']['conv_s']:.1f} conv/s "
          f"(target ≥ {TARGET:.0f}); rules-only is {ratio:.1f}× faster")
    sample = items[:: max(1, len(items) // 40)]
    alone = [labels(Pipeline.from_config(models_config()), c) for c in sample]
    together = [labels(with_models, c) for c in sample]
    same = sum(a == b for a, b in zip(alone, together))
    print(f"labels identical scored alone (fresh pipeline) and inside the run: {same}/{len(sample)}")


if __name__ == "__main__":
    main()
