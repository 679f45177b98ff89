"""The teacher on a GPU beside the shipped student on CPU: speed and label agreement, on real conversations.

Scores the JDDC + ECD conversations of ``../shared/corpora`` (the bundled sample month when the
corpora are absent) with every model input the detectors build — each agent and customer turn
with the turn it answers (empathy, emotion), the conversation's end (resolution) and each rule
hit in context (violation) — fed 256 conversations a call (as ``Pipeline.score_many`` feeds the
batch path), so the backend's length-sorted batches span conversations:

1. the teacher (torch, bf16 autocast) on ``--device`` (cuda), timed over repeated passes;
2. the shipped int8 student on CPU onnxruntime (one thread, as shipped), timed the same way;
3. the student's fp32 checkpoint on ``--device``, when the bundle carries it;
4. the teacher in fp32 on CPU on a sample, to check the device's labels against it.

Labels are the detectors' decisions (empathy, violation and the turn head's raised category at each
model's own thresholds, emotion and resolution by argmax). Prints conversations/s and utterances/s and markdown tables
for ``benchmarks/RESULTS.md``; ``--json`` writes the figures. A wall-clock budget (``--budget-s``)
is checked between calls, so the run stops cleanly and still reports what it measured.

    python benchmarks/gpu_check.py [--device cuda] [--limit N] [--budget-s 400] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models import SHIPPED_MODEL
from models.artefact import TORCH_FILE, ModelArtefact, ModelUnavailable
from models.backends import Backend, OnnxBackend, TorchBackend, encode, softmax, teacher_artefact
from models.tasks import (conversation_input, hit_input, hybrid_decision, is_candidate, previous_other, raised_category,
                          turn_input, turn_pair)
from qa_engine.io import load
from qa_engine.schema import Conversation, Role

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT.parent / "shared" / "corpora"
SAMPLE_MONTH = ROOT / "qa_engine" / "samples" / "sample_month.jsonl"
BUNDLE = ROOT / "benchmarks" / "gpu_bundle"
CHUNK = 256  # conversations a logits call: what Pipeline.score_many feeds the batch path
# which head decides each kind of input (the turn head reads the agent turns too)
HEAD_READS = (("agent", "empathy"), ("agent", "turn_violation"), ("customer", "emotion"), ("conversation", "resolution"),
              ("hit", "violation"))
HEADS_CHECKED = tuple(head for _, head in HEAD_READS)
UTTERANCES = ("agent", "customer")


@dataclass(frozen=True)
class Item:
    """One model input of a conversation: which head reads it (by kind) and, for a rule hit, the rules' decision."""

    kind: str
    input: tuple[str, str | None]
    rule_counts: bool = False


def conversation_items(conversation: Conversation, rules) -> list[Item]:
    """Every input the model detectors build for ``conversation`` (models.detectors: turn_logits,
    ResolutionModelDetector, HybridViolationDetector)."""
    turns = conversation.turns
    items = [Item(t.role.value, turn_pair(t.text, previous_other(conversation, i)))
             for i, t in enumerate(turns) if t.role in (Role.AGENT, Role.CUSTOMER)]
    items.append(Item("conversation", (conversation_input(turns), None)))
    items += [Item("hit", (hit_input(turns[h.turn].text, h.start, h.end, h.category),
                           turn_input(previous_other(conversation, h.turn) or "") or None), h.suppressed_by is None)
              for h in rules.explain(conversation) if is_candidate(h)]
    return items


def load_conversations(corpora: Path, limit: int | None) -> tuple[list[Conversation], str]:
    """The real dialogue corpora when present, else the bundled (synthetic) sample month."""
    if (corpora / "jddc_uss_usda").is_dir():
        from models.corpus import conversations

        found, source = conversations(corpora), f"JDDC + ECD ({corpora})"
    else:
        found = [c for c in load(SAMPLE_MONTH) if isinstance(c, Conversation)]
        source = f"synthetic sample month ({SAMPLE_MONTH.name}; no corpora at {corpora})"
    return found[:limit], source


Logits = dict[str, np.ndarray]


@dataclass
class Measurement:
    """One backend's timed passes: throughput, and the logits of each conversation it scored first."""

    name: str
    runtime: str
    device: str
    precision: str
    batch_size: int
    conversations: int = 0
    utterances: int = 0
    inputs: int = 0
    seconds: float = 0.0
    logits: dict[int, Logits] = field(default_factory=dict)

    @property
    def conversations_per_s(self) -> float:
        return self.conversations / self.seconds if self.seconds else 0.0

    @property
    def utterances_per_s(self) -> float:
        return self.utterances / self.seconds if self.seconds else 0.0

    def row(self) -> dict:
        return {"model": self.name, "runtime": self.runtime, "device": self.device, "precision": self.precision,
                "batch": self.batch_size, "conversations": self.conversations, "utterances": self.utterances,
                "inputs": self.inputs, "seconds": round(self.seconds, 2),
                "conv_s": round(self.conversations_per_s, 1), "utt_s": round(self.utterances_per_s, 1)}


def measure(backend: Backend, items: Sequence[list[Item]], measurement: Measurement, seconds: float, stop_at: float,
            chunk: int = CHUNK, passes: int | None = None) -> Measurement:
    """Score the conversations ``chunk`` at a time, pass after pass, until ``seconds`` (or ``stop_at``, a
    ``perf_counter`` deadline, or ``passes``) run out — checked between calls, after at least one call.

    Each pass takes the conversations in a new shuffled order: a call's inputs then never repeat an
    earlier call's, so the backend's memo of recent calls cannot serve a pass from memory. The first
    logits seen of each conversation are kept (for the agreement checks)."""
    backend.logits([item.input for item in items[0][:1]])  # warm-up: CUDA context, kernels, first allocation
    started = time.perf_counter()
    end = min(started + seconds, stop_at)
    order = list(range(len(items)))
    number = 0
    while passes is None or number < passes:
        random.Random(number).shuffle(order)
        for start in range(0, len(order), chunk):
            if measurement.inputs and time.perf_counter() >= end:
                measurement.seconds = time.perf_counter() - started
                return measurement
            chosen = order[start:start + chunk]
            flat = [item for i in chosen for item in items[i]]
            out = backend.logits([item.input for item in flat])
            offset = 0
            for i in chosen:
                measurement.logits.setdefault(i, {head: out[head][offset:offset + len(items[i])] for head in out})
                offset += len(items[i])
            measurement.conversations += len(chosen)
            measurement.utterances += sum(item.kind in UTTERANCES for item in flat)
            measurement.inputs += len(flat)
        number += 1
    measurement.seconds = time.perf_counter() - started
    return measurement


def decisions(artefact: ModelArtefact, items: Sequence[Item], logits: Logits) -> dict[str, np.ndarray]:
    """Each head's decision on the inputs it reads, as the detectors take it."""
    out = {}
    for kind, head in ((k, h) for k, h in HEAD_READS if h in artefact.manifest["heads"]):  # 0.3.0 added a head
        rows = [i for i, item in enumerate(items) if item.kind == kind]
        probs = softmax(logits[head][rows]) if rows else np.zeros((0, logits[head].shape[1]))
        if head == "empathy":
            out[head] = probs[:, 1] >= artefact.threshold("empathy")
        elif head == "turn_violation":
            threshold = artefact.threshold("turn_violation")
            out[head] = np.array([raised_category(p, threshold) or "none" for p in probs], dtype=object)
        elif head == "violation":
            keep, restore = artefact.threshold("violation_keep"), artefact.threshold("violation_restore")
            out[head] = np.array([hybrid_decision(items[r].rule_counts, p, keep, restore)
                                  for r, p in zip(rows, probs[:, 1])], bool)
        else:
            out[head] = probs.argmax(axis=1)
    return out


def agreement(items: Sequence[list[Item]], a: tuple[ModelArtefact, dict[int, Logits]],
              b: tuple[ModelArtefact, dict[int, Logits]]) -> dict[str, dict[str, float]]:
    """Per head: how many decisions two runs share, over the conversations both scored."""
    common = sorted(set(a[1]) & set(b[1]))
    agree: dict[str, list[int]] = {head: [0, 0] for head in HEADS_CHECKED
                                   if head in a[0].manifest["heads"] and head in b[0].manifest["heads"]}
    for i in common:
        left, right = decisions(a[0], items[i], a[1][i]), decisions(b[0], items[i], b[1][i])
        for head in agree:
            agree[head][0] += int((left[head] == right[head]).sum())
            agree[head][1] += len(left[head])
    return {head: {"agree": same / n if n else float("nan"), "n": n, "conversations": len(common)}
            for head, (same, n) in agree.items()}


def max_probability_gap(items: Sequence[list[Item]], a: dict[int, Logits], b: dict[int, Logits]) -> float:
    """The largest difference in any head's probabilities between two runs of the same model."""
    return max((float(np.abs(softmax(a[i][h]) - softmax(b[i][h])).max())
                for i in set(a) & set(b) for h in a[i] if len(a[i][h])), default=0.0)


def markdown(rows: list[dict], agreements: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = ["| model | runtime | device | precision | batch | conversations | utterances | conv/s | utt/s |",
             "|---|---|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['runtime']} | {r['device']} | {r['precision']} | {r['batch']} | "
              f"{r['conversations']:,} | {r['utterances']:,} | {r['conv_s']:,.1f} | {r['utt_s']:,.1f} |" for r in rows]
    if agreements:
        names = list(agreements)
        lines += ["", "| head | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for head in (h for h in HEADS_CHECKED if all(h in agreements[n] for n in names)):
            cells = [agreements[n][head] for n in names]
            lines.append(f"| {head} | " + " | ".join(f"{c['agree']:.2%} of {c['n']:,}" for c in cells) + " |")
    return "\n".join(lines)


def describe_device(device: str) -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "device": device,
            "cpu_threads": torch.get_num_threads()}
    if device == "cuda":
        info.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                    capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                    bf16=torch.cuda.is_bf16_supported())
    return info


def precision(checkpoint: Path, device: str) -> str:
    """``fp16 weights, bf16 autocast``: how a checkpoint stores its weights and how the backend computes on ``device``."""
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    stored = next(v.dtype for v in state.values() if v.is_floating_point())
    names = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
    return f"{names.get(stored, str(stored))} weights, {'bf16 autocast' if device == 'cuda' else 'fp32 compute'}"


def find_teacher(path: Path | None) -> ModelArtefact | None:
    """The given teacher directory, else the bundle's half copy, else the run directory the student names."""
    for directory in ([path] if path else [BUNDLE / "teacher"]):
        if (directory / "manifest.json").is_file():
            return ModelArtefact.load(directory)
    return None if path else teacher_artefact(ModelArtefact.load(SHIPPED_MODEL))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="where the teacher runs")
    parser.add_argument("--corpora", type=Path, default=CORPORA)
    parser.add_argument("--limit", type=int, default=None, help="conversations (default: all)")
    parser.add_argument("--teacher", type=Path, default=None,
                        help=f"teacher artefact directory (default: {BUNDLE.relative_to(ROOT)}/teacher, else models/runs)")
    parser.add_argument("--student-checkpoint", type=Path, default=BUNDLE / "student.pt",
                        help="the student's torch checkpoint, run on --device when present")
    parser.add_argument("--batch-size", type=int, default=None, help="inputs a forward pass (default 512 cuda, 32 cpu)")
    parser.add_argument("--device-seconds", type=float, default=60.0, help="timed passes per model on --device")
    parser.add_argument("--cpu-seconds", type=float, default=60.0, help="timed passes of the int8 student on CPU")
    parser.add_argument("--cpu-sample", type=int, default=100, help="conversations the fp32 teacher scores on CPU")
    parser.add_argument("--budget-s", type=float, default=400.0, help="wall-clock budget of the whole run")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    started = time.perf_counter()
    stop_at = started + args.budget_s - 5  # the last seconds are for the report

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA device here (use --device cpu for a CPU dry run)")
    info = describe_device(args.device)
    print(json.dumps(info, ensure_ascii=False))
    batch = args.batch_size or (512 if args.device == "cuda" else 32)

    from rules.detector import make_rule_detector

    conversations, source = load_conversations(args.corpora, args.limit)
    rules = make_rule_detector()
    items = [conversation_items(c, rules) for c in conversations]
    count = sum(len(i) for i in items)
    info.update(source=source, conversations=len(items), inputs=count,
                utterances=sum(item.kind in UTTERANCES for i in items for item in i),
                prepare_s=round(time.perf_counter() - started, 1))
    print(f"{source}: {len(items):,} conversations, {info['utterances']:,} utterances, {count:,} model inputs "
          f"(prepared in {info['prepare_s']} s)")

    student = ModelArtefact.load(SHIPPED_MODEL)
    teacher = find_teacher(args.teacher)
    runs: list[tuple[ModelArtefact, Measurement]] = []
    agreements: dict[str, dict[str, dict[str, float]]] = {}
    if teacher is not None:
        backend = TorchBackend.from_checkpoint(teacher, args.device, batch)
        tokenise = time.perf_counter()
        encode(backend.tokenizer, [item.input for i in items for item in i])
        info["teacher_tokenise_s"] = round(time.perf_counter() - tokenise, 2)
        runs.append((teacher, measure(backend, items, Measurement(f"teacher {teacher.name}", "torch", args.device,
                                                                   precision(teacher.directory / TORCH_FILE, args.device),
                                                                   batch), args.device_seconds, stop_at)))
        print(f"teacher on {args.device}: {runs[-1][1].row()} (tokenising every input alone: "
              f"{info['teacher_tokenise_s']} s)")
    if args.device == "cuda":
        info["gpu_peak_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2 ** 20)
    onnx = measure(OnnxBackend(student, "cpu"), items, Measurement(f"student {student.name}", "onnxruntime (1 thread)",
                                                                    "cpu", "int8", 8), args.cpu_seconds, stop_at)
    runs.append((student, onnx))
    print(f"student on CPU: {onnx.row()}")
    if args.student_checkpoint.is_file() and time.perf_counter() < stop_at:
        backend = TorchBackend.from_checkpoint(student, args.device, batch, args.student_checkpoint)
        runs.append((student, measure(backend, items, Measurement(f"student {student.name}", "torch", args.device,
                                                                  precision(args.student_checkpoint, args.device), batch),
                                      args.device_seconds / 2, stop_at)))
        print(f"student on {args.device}: {runs[-1][1].row()}")
        agreements[f"student {args.device} vs student CPU int8"] = agreement(items, (student, runs[-1][1].logits),
                                                                            (student, onnx.logits))
    if teacher is not None:
        device_run = runs[0][1]
        agreements[f"teacher {args.device} vs student CPU int8"] = agreement(items, (teacher, device_run.logits),
                                                                            (student, onnx.logits))
        if time.perf_counter() < stop_at:
            sample = items[:args.cpu_sample]
            reference = measure(TorchBackend.from_checkpoint(teacher, "cpu", 32), sample,
                                Measurement(f"teacher {teacher.name}", "torch", "cpu",
                                            precision(teacher.directory / TORCH_FILE, "cpu"), 32),
                                float("inf"), stop_at, chunk=16, passes=1)
            runs.append((teacher, reference))
            agreements[f"teacher {args.device} vs teacher CPU fp32"] = agreement(items, (teacher, device_run.logits),
                                                                                (teacher, reference.logits))
            info["teacher_max_probability_gap"] = round(max_probability_gap(items, device_run.logits, reference.logits), 5)
    rows = [m.row() for _, m in runs]
    table = markdown(rows, agreements)
    info["seconds"] = round(time.perf_counter() - started, 1)
    print(f"\n{table}\n\n{json.dumps(info, ensure_ascii=False)}")
    result = {"info": info, "rows": rows, "agreement": agreements, "markdown": table}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    try:
        main()
    except ModelUnavailable as exc:
        sys.exit(f"gpu_check: {exc}")
