"""Model inference speed: torch fp32 vs onnxruntime int8 on the CPU, batch 1 and 64, in one run.

Times the whole backend call per batch (tokenisation, length bucketing, dynamic padding,
forward pass) on agent and customer utterances of the bundled synthetic data, and prints
utterances/s and p50 / p99 latency per batch side by side. torch uses the run's fp32
checkpoint when present (``qa-engine train`` writes it), else the same architecture with
fresh weights — speed does not depend on the weight values.

    python benchmarks/bench_models.py [--seconds 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from models import SHIPPED_MODEL
from models.artefact import ModelArtefact
from models.backends import OnnxBackend, TorchBackend
from models.labels import load_dataset
from models.tasks import turn_input
from models.tokenizer import load_tokenizer
from models.config import TrainConfig

TARGETS = {64: "≥ 500 utt/s (int8)", 1: "p99 ≤ 8 ms (int8)"}


def measure(backend, utterances: list[str], batch: int, seconds: float) -> dict[str, float]:
    """Run consecutive batches for ``seconds`` after a warm-up; latency per batch call."""
    inputs = [(u, None) for u in utterances]
    batches = [inputs[i:i + batch] for i in range(0, len(inputs) - batch + 1, batch)]
    for item in batches[:3]:
        backend.logits(item)
    latencies, done, started = [], 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for item in batches:
            t0 = time.perf_counter()
            backend.logits(item)
            latencies.append(time.perf_counter() - t0)
            done += len(item)
            if time.perf_counter() - started >= seconds:
                break
    elapsed = sum(latencies)
    latencies.sort()
    return {"utt_s": done / elapsed, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per configuration")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    artefact = ModelArtefact.load(SHIPPED_MODEL)
    checkpoint = Path(TrainConfig.run_dir) / "model.pt"
    if checkpoint.is_file():
        fp32, weights = TorchBackend.from_checkpoint(artefact, "cpu", checkpoint=checkpoint), "trained checkpoint"
    else:
        from models.network import MultiHeadClassifier, encoder_config

        training = artefact.manifest["training"]
        model = MultiHeadClassifier(encoder_config(artefact.manifest["vocabulary"], training["hidden"],
                                                   training["layers"], training["attention_heads"]))
        fp32, weights = TorchBackend(model, load_tokenizer(SHIPPED_MODEL), "cpu"), "same architecture, fresh weights"
    int8 = OnnxBackend(artefact, "cpu", threads=args.threads)
    utterances = [turn_input(u["text"]) for u in load_dataset().utterances]
    mean_chars = sum(map(len, utterances)) / len(utterances)
    print(f"model {artefact.name} {artefact.provenance}; {len(utterances)} utterances, mean {mean_chars:.1f} chars; "
          f"CPU threads {args.threads}; torch fp32: {weights}")
    print(f"{'batch':>5} | {'torch fp32 utt/s':>16} {'p50 ms':>8} {'p99 ms':>8} | "
          f"{'onnx int8 utt/s':>16} {'p50 ms':>8} {'p99 ms':>8} | target")
    for batch in (1, 64):
        a = measure(fp32, utterances, batch, args.seconds)
        b = measure(int8, utterances, batch, args.seconds)
        print(f"{batch:>5} | {a['utt_s']:>16.0f} {a['p50_ms']:>8.2f} {a['p99_ms']:>8.2f} | "
              f"{b['utt_s']:>16.0f} {b['p50_ms']:>8.2f} {b['p99_ms']:>8.2f} | {TARGETS[batch]}")


if __name__ == "__main__":
    main()
