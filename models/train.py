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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from transformers import BertForMaskedLM, DataCollatorForLanguageModeling

from models.artefact import ONNX_FILE, TOKENIZER_FILE, TORCH_FILE, ModelArtefact, write_manifest
from models.backends import INPUT_NAMES, OnnxBackend, TorchBackend, encode, pad
from models.config import MODEL_NAME, MODEL_VERSION, PRETRAIN_LENGTH, FinetuneSettings, TrainConfig
from models.corpus import bundled_texts
from models.labels import Dataset, load_compliance_lines, load_dataset, load_real_dataset, sample_dialogues
from models.network import MultiHeadClassifier, encoder_config, save_checkpoint
from models.tasks import (HEADS, Example, compliance_line_examples, conversation_input, conversation_of,
                          golden_case_examples, line_rows, resolution_examples, turn_examples, turn_input, turn_pair,
                          unlabelled_examples, violation_examples, with_soft_labels)
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


def _targets(batch: list[Example], classes: int, device: torch.device) -> torch.Tensor:
    """Per example the distribution to learn: the gold label, the teacher's probabilities, or both halved."""
    rows = []
    for example in batch:
        gold = F.one_hot(torch.tensor(example.label), classes).float() if example.label >= 0 else None
        soft = torch.tensor(example.soft, dtype=torch.float32) if example.soft is not None else None
        rows.append(gold if soft is None else soft if gold is None else (gold + soft) / 2)
    return torch.stack(rows).to(device)


def finetune(model: MultiHeadClassifier, examples: list[Example], tokenizer, settings: FinetuneSettings,
             device: torch.device, log: list[str], name: str = "fine-tune") -> MultiHeadClassifier:
    """Multi-head training on gold labels and, where an example has them, a teacher's soft labels."""
    seed_everything(settings.seed)
    model.to(device).train()
    rng = random.Random(settings.seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.lr, weight_decay=0.01)
    steps = settings.epochs * len(_batches(examples, settings.batch, random.Random(0)))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, settings.lr, total_steps=max(steps, 1), pct_start=0.1)
    head_index = {head: i for i, head in enumerate(HEADS)}
    started, done = time.perf_counter(), 0
    for epoch in range(settings.epochs):
        total = 0.0
        for batch in _batches(examples, settings.batch, rng):
            head = batch[0].head
            feeds = pad(*encode(tokenizer, [(e.text, e.pair) for e in batch]))
            logits = model(**{name: torch.from_numpy(array).to(device) for name, array in feeds.items()})[head_index[head]]
            loss = -(_targets(batch, len(HEADS[head]), device) * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            total += loss.item() * len(batch)
            done += 1
            if done % 200 == 0:
                print(f"{name}: step {done}/{steps} ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
        log.append(f"{name} epoch {epoch}: loss {total / len(examples):.3f} ({time.perf_counter() - started:.0f} s)")
    return model.eval()


def head_examples(data: Dataset, rule_detector, extra_training: bool = False, synthetic: bool = True,
                  lines: Sequence[dict[str, Any]] = ()) -> list[Example]:
    """The examples of one split; ``extra_training`` adds the golden cases, the blind lines' dev split
    (and, for the synthetic set, the sample dialogues) — train only."""
    examples = [*turn_examples(data.utterances), *violation_examples(data.utterances, rule_detector),
                *resolution_examples(data.conversations)]
    if extra_training:
        packs = Path(rule_detector.watched_files()[0]).parent
        examples += golden_case_examples(rule_detector, sorted(packs.glob("*.cases.yaml")))
        examples += compliance_line_examples(lines)
        if not synthetic:
            return examples
        samples = sample_dialogues()
        examples += resolution_examples(samples)
        examples += [Example("emotion", turn_input(next(t["text"] for t in reversed(r["turns"]) if t["role"] == "customer")),
                             label=HEADS["emotion"].index(r["labels"]["emotion_end"]), source=r["conversation_id"])
                     for r in samples]
    return examples


def tune_thresholds(backend, dev: list[Example], lines: Sequence[dict[str, Any]] = ()) -> dict[str, float]:
    """On the dev split: empathy for the best F1; the hybrid violation decision's keep / restore thresholds;
    the turn head's bar for raising a finding on its own (``raise_threshold``: real dev turns, and the
    hand-written lines of split ``tune``, never trained on)."""
    from models.evaluate import best_threshold, hybrid_thresholds, raise_threshold

    empathy = [e for e in dev if e.head == "empathy"]
    hits = [e for e in dev if e.head == "violation"]
    turns = [e for e in dev if e.head == "turn_violation"]
    thresholds = {}
    if empathy:
        probs = backend.probabilities("empathy", [(e.text, e.pair) for e in empathy])[:, 1]
        thresholds["empathy"] = best_threshold(probs, np.array([e.label for e in empathy]))
    if turns:
        probs = backend.probabilities("turn_violation", [(e.text, e.pair) for e in turns])
        held_out = line_rows(line for line in lines if line["split"] == "tune")
        tune = (backend.probabilities("turn_violation", [turn_pair(r["text"], r["context"]) for r in held_out]),
                [set(r["compliance"]) for r in held_out]) if held_out else None
        thresholds["turn_violation"] = raise_threshold(probs, np.array([e.label for e in turns]), tune)
    probs = backend.probabilities("violation", [(e.text, e.pair) for e in hits])[:, 1]
    keep, restore = hybrid_thresholds(probs, np.array([e.rule for e in hits]), np.array([e.label for e in hits]))
    return thresholds | {"violation_keep": keep, "violation_restore": restore}


def tune_satisfaction(backend, conversations: list[dict[str, Any]]) -> dict[str, float]:
    """Cut points of the customer's mood (``models.detectors.satisfaction_score``) into dissatisfied /
    neutral / satisfied, chosen on dev for the best macro-F1 against the customers' dialogue ratings."""
    from models.detectors import customer_emotion, satisfaction_label, satisfaction_score
    from models.evaluate import classification_report, macro_f1

    rated = [c for c in conversations if c.get("satisfaction") is not None]
    if not rated:
        return {}
    moods = [satisfaction_score(customer_emotion(backend, conversation_of(record))[1]) for record in rated]
    names = ("dissatisfied", "neutral", "satisfied")
    gold = [names[c["satisfaction"]] for c in rated]
    grid = sorted(set(np.round(np.quantile(moods, np.linspace(0.02, 0.98, 33)), 4).tolist()))
    best = max((macro_f1(classification_report(gold, [satisfaction_label(m, low, high) for m in moods], names)), -low, high)
               for low in grid for high in grid if high > low)
    return {"satisfaction_low": -best[1], "satisfaction_high": best[2]}


CALIBRATION_INPUTS = 1200  # train-split model inputs the int8 activation ranges are measured on
QUANTISATION = "static int8: MatMul inputs u8 (ranges calibrated on train-split inputs), weights s8"


def export_onnx(model: MultiHeadClassifier, run_dir: Path, output: Path, tokenizer,
                calibration: Sequence[tuple[str, str | None]], seed: int) -> Path:
    """fp32 ONNX (run dir) → int8 with *static* activation ranges (shipped). Batch and sequence axes are dynamic.

    Static, not dynamic, quantisation: dynamic quantisation scales each batch by its own largest
    activation, so an input's logits would change with whatever was batched beside it; with ranges
    fixed at export every row is computed alone, and a conversation scores the same inside a batch
    of 256 as on its own (what lets the model detectors batch across conversations)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = model.cpu().eval()
    sample = {name: torch.ones((2, 8), dtype=torch.long) for name in INPUT_NAMES}
    sample["token_type_ids"] = torch.zeros((2, 8), dtype=torch.long)
    fp32 = run_dir / "model.fp32.onnx"
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES} | {f"{h}_logits": {0: "batch"} for h in HEADS}
    torch.onnx.export(model, tuple(sample[n] for n in INPUT_NAMES), str(fp32), input_names=list(INPUT_NAMES),
                      output_names=[f"{h}_logits" for h in HEADS], dynamic_axes=axes, opset_version=17, dynamo=False)
    prepared = run_dir / "model.fp32.prepared.onnx"  # constant folding and shapes, as onnxruntime asks
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)  # (symbolic inference fails on BERT)
    chosen = random.Random(seed).sample(list(calibration), min(CALIBRATION_INPUTS, len(calibration)))
    ids, types = encode(tokenizer, chosen)
    batches = iter([pad(ids[i:i + 16], types[i:i + 16]) for i in range(0, len(ids), 16)])

    class Calibration(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(batches, None)

    # QOperator (QLinearMatMul) with u8 activations: the fast int8 kernels on x86 CPUs; QDQ runs slower here
    quantize_static(str(prepared), str(output / ONNX_FILE), Calibration(), quant_format=QuantFormat.QOperator,
                    op_types_to_quantize=["MatMul"], activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
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


def _teacher_stage(texts: list[str], train_examples: list[Example], dev_examples: list[Example],
                   dev_conversations: list[dict[str, Any]], lines: list[dict[str, Any]], config: TrainConfig,
                   device: torch.device, run_dir: Path, log: list[str]) -> tuple[Any, ModelArtefact]:
    """Fine-tune the e5 teacher; saved as an artefact in the run dir (never shipped: hundreds of MB)."""
    from models.teacher import TEACHER_NAME, TEACHER_VERSION, XLMR_TOKENS, build_teacher

    started = time.perf_counter()
    teacher, tokenizer, info = build_teacher(texts, config.teacher_layers)
    teacher.bert.embeddings.word_embeddings.weight.requires_grad_(False)  # pretrained pieces stay put: ~2x faster on CPU
    log.append(f"teacher: e5-small, {teacher.config.num_hidden_layers} layers, vocabulary pruned "
               f"{info.get('vocab_before')} → {info.get('vocab_after')} ({time.perf_counter() - started:.0f} s)")
    teacher = finetune(teacher, train_examples, tokenizer, config.teacher_settings(), device, log, "teacher")
    backend = TorchBackend(teacher, tokenizer, str(device))
    thresholds = tune_thresholds(backend, dev_examples, lines) | tune_satisfaction(backend, dev_conversations)
    directory = run_dir / TEACHER_NAME
    directory.mkdir(parents=True, exist_ok=True)
    save_checkpoint(teacher, directory / TORCH_FILE)
    tokenizer.backend_tokenizer.save(str(directory / TOKENIZER_FILE))
    manifest = {"name": TEACHER_NAME, "version": TEACHER_VERSION, "heads": {h: list(v) for h, v in HEADS.items()},
                "thresholds": thresholds, "tokenizer": XLMR_TOKENS, "source": info,
                "layers": teacher.config.num_hidden_layers, "vocabulary": teacher.config.vocab_size}
    artefact = write_manifest(directory, manifest, [TOKENIZER_FILE, TORCH_FILE])
    backend.artefact = artefact
    log.append(f"teacher trained and saved to {directory} ({time.perf_counter() - started:.0f} s)")
    return backend, artefact


def _real_data(config: TrainConfig) -> tuple[Dataset, list[str], list[Any], dict[str, int]]:
    """The labelled real corpora, their non-test text for pretraining, and every non-test conversation."""
    from models.annotation import split_of
    from models.corpus import conversations, real_texts

    root = Path(config.corpora[0])
    data = load_real_dataset(root, Path(config.labels_dir))
    dialogues = conversations(root)
    test_texts = {t.text.strip() for c in dialogues if split_of(c.conversation_id) == "test" for t in c.turns}
    texts = [t for t in real_texts(root) if t not in test_texts]
    pool = [c for c in dialogues if split_of(c.conversation_id) == "train"]
    return data, texts, pool, {str(root): len(texts)}


def train(config: TrainConfig) -> dict[str, Any]:
    """The whole recipe; returns the evaluation report (also written to the card and the run dir).

    With a corpus (``--corpus ../shared/corpora``): real labelled data (``models/data/real``), the e5
    teacher fine-tuned and distilled into the character student. Without one: the bundled synthetic
    set and no teacher (tests, demos).
    """
    from rules.detector import make_rule_detector

    started = time.perf_counter()
    device = _device(config.device)
    output, run_dir = Path(config.output), Path(config.run_dir)
    output.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    log = ProgressLog()
    log.append(f"device {device}")
    real = bool(config.corpora)
    if real:
        data, texts, pool, per_source = _real_data(config)
    else:
        data = load_dataset(Path(config.data_dir))
        test_texts = {u["text"] for u in data.split("test").utterances}
        texts = [t for t in bundled_texts() if t not in test_texts]
        texts += [u["text"] for u in data.utterances if u["split"] != "test"]
        pool, per_source = [], {"bundled synthetic text": len(texts)}
    train_data, dev_data = data.split("train"), data.split("dev")
    rules = make_rule_detector()
    pattern = Path(config.compliance_lines)
    lines = load_compliance_lines(sorted(pattern.parent.glob(pattern.name)))
    train_examples = head_examples(train_data, rules, extra_training=True, synthetic=not real, lines=lines)
    dev_examples = head_examples(dev_data, rules)

    teacher = teacher_artefact = None
    if real and config.reuse_teacher:
        from models.teacher import TEACHER_NAME

        teacher = TorchBackend.from_checkpoint(ModelArtefact.load(run_dir / TEACHER_NAME), str(device))
        teacher_artefact = teacher.artefact
        log.append(f"teacher: reused {teacher_artefact.name} {teacher_artefact.provenance} from {teacher_artefact.directory}")
    elif real and config.teacher_layers:
        teacher, teacher_artefact = _teacher_stage(texts, train_examples, dev_examples, dev_data.conversations, lines,
                                                   config, device, run_dir, log)
    if teacher is not None:
        labelled = {e.source.split(":")[0] for e in train_examples}
        distil = unlabelled_examples(pool, labelled)
        train_examples = with_soft_labels(train_examples, teacher) + with_soft_labels(distil, teacher)
        log.append(f"distillation: {len(distil)} unlabelled train-split inputs with the teacher's probabilities")
    pretrain_texts = list(dict.fromkeys(texts + [conversation_input(conversation_of(c).turns)
                                                 for c in (*train_data.conversations, *dev_data.conversations)]))
    tokenizer = build_tokenizer(build_vocab(pretrain_texts))
    save_tokenizer(tokenizer, output)
    log.append(f"vocabulary {len(tokenizer)}; pretraining texts {len(pretrain_texts)} "
               f"({sum(map(len, pretrain_texts))} characters)")
    encoder = pretrain(pretrain_texts, tokenizer, config, device, log)
    pretrained_at = time.perf_counter()
    model = MultiHeadClassifier(encoder_config(len(tokenizer), config.hidden, config.layers, config.attention_heads))
    model.bert.load_state_dict(encoder)
    model = finetune(model, train_examples, tokenizer, config.student_settings(), device, log, "student")
    save_checkpoint(model, run_dir / TORCH_FILE)
    student_fp32 = TorchBackend(model, tokenizer, str(device))
    thresholds = tune_thresholds(student_fp32, dev_examples, lines) | tune_satisfaction(student_fp32, dev_data.conversations)
    export_onnx(model, run_dir, output, tokenizer, [(e.text, e.pair) for e in train_examples], config.seed)
    parameters = sum(p.numel() for p in model.parameters())
    manifest = {"name": MODEL_NAME, "version": MODEL_VERSION,
                "data": ("REAL, research-only: JDDC (USS/USDA) and ECD sample, labels in models/data/real"
                         if real else "SYNTHETIC (models/data, hand-written pools); no accuracy claim"),
                "heads": {h: list(labels) for h, labels in HEADS.items()}, "thresholds": thresholds,
                "max_length": MAX_LENGTH, "quantisation": QUANTISATION, "vocabulary": len(tokenizer), "parameters": parameters,
                "teacher": teacher_artefact and {"name": teacher_artefact.name, "provenance": teacher_artefact.provenance,
                                                 "directory": _portable({"d": str(teacher_artefact.directory)})["d"]},
                "training": _portable(asdict(config)) | {"device": str(device)}}
    artefact = write_manifest(output, manifest, [TOKENIZER_FILE, ONNX_FILE])
    if teacher_artefact is not None:  # the teacher names its student, so results it scores record both
        teacher.artefact = write_manifest(teacher_artefact.directory, teacher_artefact.manifest | {
            "student": {"name": artefact.name, "provenance": artefact.provenance}}, [TOKENIZER_FILE, TORCH_FILE])
    timings = {"pretrain_s": round(pretrained_at - started, 1), "total_s": round(time.perf_counter() - started, 1)}
    report: dict[str, Any] = {"log": log, "timings": timings, "pretraining_sources": per_source,
                              "parameters": parameters, "real": real}
    if config.write_card:
        from models.evaluate import evaluate, write_card

        systems = {"student (shipped int8 ONNX)": OnnxBackend(artefact, "cpu")}
        if teacher is not None:
            systems = {"teacher (e5-small fp32)": teacher} | systems
        fp32 = TorchBackend(model, tokenizer, str(device))
        report |= evaluate(systems, fp32, artefact, data, rules, len(train_examples), lines)
        if real:
            from models.evaluate import pipeline_comparison

            report["pipeline"] = pipeline_comparison(data, output)
            agreement = Path(config.labels_dir) / "agreement.json"
            report["agreement"] = json.loads(agreement.read_text(encoding="utf-8")) if agreement.exists() else {}
        write_card(output / "CARD.md", artefact, report)
    (run_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return report
