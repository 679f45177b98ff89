"""Reproducible training: tokenizer → MLM pretraining → multi-head fine-tuning → int8 ONNX → model card.

Seeded end to end; runs on the CPU (minutes on the bundled synthetic text) and uses CUDA
automatically when present. Outputs: the shipped artefact directory (tokenizer, int8 ONNX,
manifest, CARD.md) and a run directory (fp32 checkpoint and ONNX, logs; git-ignored).
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from transformers import BertForMaskedLM, DataCollatorForLanguageModeling

from models.artefact import ONNX_FILE, TOKENIZER_FILE, TORCH_FILE, write_manifest
from models.backends import INPUT_NAMES, OnnxBackend, TorchBackend, encode, pad
from models.config import MODEL_NAME, MODEL_VERSION, PRETRAIN_LENGTH, TrainConfig
from models.corpus import bundled_sources, pretraining_texts
from models.labels import Dataset, load_dataset, sample_dialogues
from models.network import MultiHeadClassifier, encoder_config, save_checkpoint
from models.tasks import (HEADS, Example, conversation_input, conversation_of, golden_case_examples,
                          resolution_examples, turn_examples, turn_input, violation_examples)
from models.tokenizer import MAX_LENGTH, build_tokenizer, build_vocab, save_tokenizer


class ProgressLog(list):
    """The training log: kept for the card and printed as it grows (runs take minutes)."""

    def append(self, line: str) -> None:
        super().append(line)
        print(line, file=sys.stderr, flush=True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _device(name: str) -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


def pretrain(texts: list[str], tokenizer, config: TrainConfig, device: torch.device, log: list[str]) -> dict[str, Any]:
    """Masked-language modelling (15 % of characters) on the corpus text; returns the encoder's weights."""
    seed_everything(config.seed)
    bert_config = encoder_config(len(tokenizer), config.hidden, config.layers, config.attention_heads)
    model = BertForMaskedLM(bert_config).to(device).train()
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=config.seed)
    encoded = [tokenizer(t, truncation=True, max_length=PRETRAIN_LENGTH)["input_ids"] for t in texts]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.pretrain_lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.pretrain_lr, total_steps=max(config.pretrain_steps, 1),
                                                   pct_start=0.1)
    rng = random.Random(config.seed)
    started = time.perf_counter()
    for step in range(config.pretrain_steps):
        batch = collator([{"input_ids": ids} for ids in rng.sample(encoded, min(config.pretrain_batch, len(encoded)))])
        labels = batch["labels"].to(device)
        hidden = model.bert(input_ids=batch["input_ids"].to(device),
                            attention_mask=batch["attention_mask"].to(device)).last_hidden_state
        masked = labels != -100  # the vocabulary projection only where a character was masked: ~7x cheaper
        loss = F.cross_entropy(model.cls(hidden[masked]), labels[masked])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if step % 50 == 0 or step == config.pretrain_steps - 1:
            log.append(f"pretrain step {step}: mlm loss {loss.item():.3f} ({time.perf_counter() - started:.0f} s)")
    return model.bert.state_dict()


def _batches(examples: list[Example], size: int, rng: random.Random) -> list[list[Example]]:
    """Shuffled single-head batches (a batch trains one head), their order shuffled across heads."""
    batches = []
    for head in HEADS:
        chosen = [e for e in examples if e.head == head]
        rng.shuffle(chosen)
        batches += [chosen[i:i + size] for i in range(0, len(chosen), size)]
    rng.shuffle(batches)
    return batches


def finetune(model: MultiHeadClassifier, examples: list[Example], tokenizer, config: TrainConfig,
             device: torch.device, log: list[str]) -> MultiHeadClassifier:
    seed_everything(config.seed)
    model.to(device).train()
    rng = random.Random(config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.finetune_lr, weight_decay=0.01)
    steps = config.finetune_epochs * len(_batches(examples, config.finetune_batch, random.Random(0)))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.finetune_lr, total_steps=max(steps, 1), pct_start=0.1)
    head_index = {head: i for i, head in enumerate(HEADS)}
    started = time.perf_counter()
    for epoch in range(config.finetune_epochs):
        total = 0.0
        for batch in _batches(examples, config.finetune_batch, rng):
            feeds = pad(*encode(tokenizer, [(e.text, e.pair) for e in batch]))
            logits = model(**{name: torch.from_numpy(array).to(device) for name, array in feeds.items()})[
                head_index[batch[0].head]]
            loss = F.cross_entropy(logits, torch.tensor([e.label for e in batch], device=device))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            total += loss.item() * len(batch)
        log.append(f"fine-tune epoch {epoch}: loss {total / len(examples):.3f} ({time.perf_counter() - started:.0f} s)")
    return model.eval()


def head_examples(data: Dataset, rule_detector, extra_training: bool = False) -> list[Example]:
    """The examples of one split; ``extra_training`` adds the golden cases and the sample dialogues (train only)."""
    examples = [*turn_examples(data.utterances), *violation_examples(data.utterances, rule_detector),
                *resolution_examples(data.conversations)]
    if extra_training:
        packs = Path(rule_detector.watched_files()[0]).parent
        examples += golden_case_examples(rule_detector, sorted(packs.glob("*.cases.yaml")))
        samples = sample_dialogues()
        examples += resolution_examples(samples)
        examples += [Example("emotion", turn_input(next(t["text"] for t in reversed(r["turns"]) if t["role"] == "customer")),
                             label=HEADS["emotion"].index(r["labels"]["emotion_end"]), source=r["conversation_id"])
                     for r in samples]
    return examples


def tune_thresholds(backend, dev: list[Example]) -> dict[str, float]:
    """On the dev split: empathy for the best F1; the hybrid violation decision's keep / restore thresholds."""
    from models.evaluate import best_threshold, hybrid_thresholds

    empathy = [e for e in dev if e.head == "empathy"]
    hits = [e for e in dev if e.head == "violation"]
    thresholds = {}
    if empathy:
        probs = backend.probabilities("empathy", [(e.text, e.pair) for e in empathy])[:, 1]
        thresholds["empathy"] = best_threshold(probs, np.array([e.label for e in empathy]))
    probs = backend.probabilities("violation", [(e.text, e.pair) for e in hits])[:, 1]
    keep, restore = hybrid_thresholds(probs, np.array([e.rule for e in hits]), np.array([e.label for e in hits]))
    return thresholds | {"violation_keep": keep, "violation_restore": restore}


def export_onnx(model: MultiHeadClassifier, run_dir: Path, output: Path) -> Path:
    """fp32 ONNX (run dir) → int8 dynamic quantisation (shipped). Batch and sequence axes are dynamic."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = model.cpu().eval()
    sample = {name: torch.ones((2, 8), dtype=torch.long) for name in INPUT_NAMES}
    sample["token_type_ids"] = torch.zeros((2, 8), dtype=torch.long)
    fp32 = run_dir / "model.fp32.onnx"
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES} | {f"{h}_logits": {0: "batch"} for h in HEADS}
    torch.onnx.export(model, tuple(sample[n] for n in INPUT_NAMES), str(fp32), input_names=list(INPUT_NAMES),
                      output_names=[f"{h}_logits" for h in HEADS], dynamic_axes=axes, opset_version=17, dynamo=False)
    quantize_dynamic(str(fp32), str(output / ONNX_FILE), weight_type=QuantType.QInt8)
    return output / ONNX_FILE


def _portable(settings: dict[str, Any]) -> dict[str, Any]:
    """Paths inside the repository recorded relative to it, so the committed manifest names no machine."""
    root = Path(__file__).resolve().parents[1]

    def relative(value: Any) -> Any:
        if isinstance(value, list):
            return [relative(v) for v in value]
        if isinstance(value, str) and Path(value).is_absolute() and Path(value).resolve().is_relative_to(root):
            return str(Path(value).resolve().relative_to(root))
        return value

    return {key: relative(value) for key, value in settings.items()}


def train(config: TrainConfig) -> dict[str, Any]:
    """The whole recipe; returns the evaluation report (also written to the card and the run dir)."""
    from rules.detector import make_rule_detector

    started = time.perf_counter()
    device = _device(config.device)
    output, run_dir = Path(config.output), Path(config.run_dir)
    output.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    log = ProgressLog()
    log.append(f"device {device}")
    data = load_dataset(Path(config.data_dir))
    train_data, dev_data, test_data = data.split("train"), data.split("dev"), data.split("test")
    test_texts = {u["text"] for u in test_data.utterances}
    corpora = [Path(c) for c in config.corpora]
    texts, per_source = pretraining_texts(corpora or bundled_sources(), exclude=test_texts)
    texts += [conversation_input(conversation_of(c).turns) for c in (*train_data.conversations, *dev_data.conversations)]
    texts += [u["text"] for u in (*train_data.utterances, *dev_data.utterances)]
    texts = list(dict.fromkeys(texts))
    tokenizer = build_tokenizer(build_vocab(texts))
    save_tokenizer(tokenizer, output)
    log.append(f"vocabulary {len(tokenizer)}; pretraining texts {len(texts)} ({sum(map(len, texts))} characters)")

    encoder = pretrain(texts, tokenizer, config, device, log)
    pretrained_at = time.perf_counter()
    model = MultiHeadClassifier(encoder_config(len(tokenizer), config.hidden, config.layers, config.attention_heads))
    model.bert.load_state_dict(encoder)
    rules = make_rule_detector()
    train_examples = head_examples(train_data, rules, extra_training=True)
    model = finetune(model, train_examples, tokenizer, config, device, log)
    save_checkpoint(model, run_dir / TORCH_FILE)
    thresholds = tune_thresholds(TorchBackend(model, tokenizer, str(device)), head_examples(dev_data, rules))
    export_onnx(model, run_dir, output)
    parameters = sum(p.numel() for p in model.parameters())
    manifest = {"name": MODEL_NAME, "version": MODEL_VERSION,
                "data": "SYNTHETIC (models/data, hand-written pools); no accuracy claim",
                "heads": {h: list(labels) for h, labels in HEADS.items()}, "thresholds": thresholds,
                "max_length": MAX_LENGTH, "vocabulary": len(tokenizer), "parameters": parameters, "training": _portable(asdict(config)) | {"device": str(device)}}
    artefact = write_manifest(output, manifest, [TOKENIZER_FILE, ONNX_FILE])
    timings = {"pretrain_s": round(pretrained_at - started, 1), "total_s": round(time.perf_counter() - started, 1)}
    report: dict[str, Any] = {"log": log, "timings": timings, "pretraining_sources": per_source or
                              {str(c): None for c in corpora}, "parameters": parameters}
    if config.write_card:
        from models.evaluate import evaluate, write_card

        shipped = OnnxBackend(artefact, "cpu")
        fp32 = TorchBackend(model, tokenizer, str(device))
        report |= evaluate(shipped, fp32, artefact, data, rules, len(train_examples))
        write_card(output / "CARD.md", artefact, report)
    (run_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return report
