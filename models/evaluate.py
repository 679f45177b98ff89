"""Test-split evaluation of the shipped model next to the lexical baselines, and the model card.

Everything is measured on the test split only (never trained on, never used for
thresholds). The baselines run on exactly the same items: ``qa.empathy.lexical.v1`` (an
empathy cue in the turn), ``qa.resolution.lexical.v1``, and the rule detector ``qa.rules.v1``
(its own decision on each hit) for the contextual-violation head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from qa_engine.baselines import EmpathyLexicalDetector, ResolutionLexicalDetector
from qa_engine.findings import FindingKind
from qa_engine.lexicons import load_lexicons
from qa_engine.schema import Conversation, Role, Turn
from qa_engine.text import normalise
from models.artefact import ModelArtefact
from models.labels import SPLITS, Dataset
from models.tasks import (HEADS, conversation_input, conversation_of, hit_candidates, hit_input, hybrid_decision,
                          turn_input, turn_pair, utterance_conversation)

TARGETS = {"empathy F1 (yes)": 0.80, "resolution accuracy": 0.80,
           "false violation turns per 1,000 real agent turns (at most)": 3.0,
           "Spearman ρ, conversation score vs customers' satisfaction": 0.30}


def classification_report(gold: list[str], predicted: list[str], labels: tuple[str, ...]) -> dict[str, Any]:
    """Accuracy, per-label precision / recall / F1 / support and the confusion matrix (rows gold, columns predicted)."""
    matrix = [[sum(g == row and p == col for g, p in zip(gold, predicted)) for col in labels] for row in labels]
    per_label = {}
    for i, label in enumerate(labels):
        tp, predicted_n, support = matrix[i][i], sum(r[i] for r in matrix), sum(matrix[i])
        precision = tp / predicted_n if predicted_n else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    accuracy = sum(g == p for g, p in zip(gold, predicted)) / len(gold) if gold else 0.0
    return {"accuracy": accuracy, "per_label": per_label, "confusion": matrix, "labels": list(labels), "n": len(gold)}


def best_threshold(probs: np.ndarray, labels: np.ndarray, min_precision: float | None = None) -> float:
    """The threshold with the best F1, or the one with the most recall at ``min_precision`` (best F1 if none reaches it)."""
    best: tuple[float, float] = (-1.0, 0.5)
    best_at_precision: tuple[float, float] = (-1.0, 0.5)
    for threshold in sorted(set(np.round(probs, 4).tolist())):
        predicted = probs >= threshold
        tp = int((predicted & (labels == 1)).sum())
        precision = tp / predicted.sum() if predicted.sum() else 0.0
        recall = tp / (labels == 1).sum() if (labels == 1).sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        best = max(best, (f1, -threshold))
        if min_precision is not None and precision >= min_precision:
            best_at_precision = max(best_at_precision, (recall, -threshold))
    chosen = best_at_precision if best_at_precision[0] >= 0 else best
    return float(-chosen[1]) if chosen[0] >= 0 else 0.5


def hybrid_thresholds(probs: np.ndarray, rule: np.ndarray, labels: np.ndarray,
                      min_precision: float = 0.95) -> tuple[float, float]:
    """``keep``: drop the rules' hits the model scores below it, but never a real one of the tuning set
    (at most 0.5); ``restore``: the lowest threshold at which excused hits brought back are ≥
    ``min_precision`` real (1.01 — never — when none qualifies)."""
    kept_real = probs[(rule == 1) & (labels == 1)]
    keep = float(min(0.5, kept_real.min() - 1e-4)) if len(kept_real) else 0.5
    restore = 1.01
    excused = rule == 0
    for threshold in sorted(set(np.round(probs[excused], 4).tolist()), reverse=True):
        back = excused & (probs >= threshold)
        if labels[back].mean() < min_precision:
            break
        restore = threshold
    return max(keep, 0.0), restore


def _agent_turn(text: str) -> Conversation:
    return Conversation(conversation_id="u", turns=(Turn(role=Role.AGENT, text=text),))


def macro_f1(report: dict[str, Any]) -> float:
    return float(np.mean([v["f1"] for v in report["per_label"].values()]))


def evaluate(systems: dict[str, Any], fp32, artefact: ModelArtefact, data: Dataset, rules, train_examples: int) -> dict[str, Any]:
    """Every system (teacher, student …: backends carrying their artefact's thresholds) beside the baselines,
    per head, on the test split; then the whole pipeline, rules-only vs the models configuration."""
    test = data.split("test")
    agent = [u for u in test.utterances if u["role"] == "agent"]
    customer = [u for u in test.utterances if u["role"] == "customer"]
    sizes = {split: {"conversations": len(part.conversations),
                     "agent utterances": sum(u["role"] == "agent" for u in part.utterances),
                     "customer utterances": sum(u["role"] == "customer" for u in part.utterances)}
             for split, part in ((s, data.split(s)) for s in SPLITS)}
    report: dict[str, Any] = {"sizes": sizes, "training examples": train_examples,
                              "heads": {"empathy": {}, "resolution": {}, "emotion": {}, "violation": {}}}
    heads = report["heads"]
    conversations = [conversation_of(c) for c in test.conversations]
    lexicons = load_lexicons()
    for name, backend in systems.items():
        probs = backend.probabilities("empathy", [turn_pair(u["text"], u.get("context")) for u in agent])[:, 1]
        heads["empathy"][name] = classification_report(
            ["yes" if u["empathy"] else "no" for u in agent],
            ["yes" if p >= backend.artefact.threshold("empathy") else "no" for p in probs], HEADS["empathy"])
        logits = backend.logits([(conversation_input(c.turns), None) for c in conversations])["resolution"]
        heads["resolution"][name] = classification_report([c["labels"]["resolution"] for c in test.conversations],
                                                          [HEADS["resolution"][i] for i in logits.argmax(axis=1)],
                                                          HEADS["resolution"])
        logits = backend.logits([turn_pair(u["text"], u.get("context")) for u in customer])["emotion"]
        heads["emotion"][name] = classification_report([u["emotion"] for u in customer],
                                                       [HEADS["emotion"][i] for i in logits.argmax(axis=1)], HEADS["emotion"])
        heads["violation"][name] = _violations(backend, agent, rules)
    empathy_baseline = EmpathyLexicalDetector()
    heads["empathy"]["qa.empathy.lexical.v1"] = classification_report(
        ["yes" if u["empathy"] else "no" for u in agent],
        ["yes" if any(f.kind is FindingKind.SIGNAL for f in empathy_baseline.detect(_agent_turn(u["text"]))) else "no"
         for u in agent], HEADS["empathy"])
    resolution_baseline = ResolutionLexicalDetector()
    heads["resolution"]["qa.resolution.lexical.v1"] = classification_report(
        [c["labels"]["resolution"] for c in test.conversations],
        [resolution_baseline.detect(c)[0].label for c in conversations], HEADS["resolution"])
    heads["emotion"]["complaint-cue heuristic (no shipped baseline)"] = classification_report(
        [u["emotion"] for u in customer],
        ["negative" if lexicons.cues("complaint", "cues").first(normalise(u["text"]).compact) else "neutral"
         for u in customer], HEADS["emotion"])
    heads["violation"]["qa.rules.v1"] = _violations(None, agent, rules)
    report["parity"] = _parity(systems["student (shipped int8 ONNX)"], fp32, agent, customer, conversations)
    return report


def _violations(backend, agent: list[dict[str, Any]], rules) -> dict[str, Any]:
    """Per utterance × category decisions and false violation turns: the rule detector alone
    (``backend`` None) or each rule hit decided in context by the model (the hybrid decision)."""
    gold_pairs: set = set()
    predicted: set = set()
    candidates = []
    for u in agent:
        conversation = utterance_conversation(u)
        last = len(conversation.turns) - 1
        gold_pairs |= {(u["id"], c) for c in u["compliance"]}
        if backend is None:
            predicted |= {(u["id"], f.category) for f in rules.detect(conversation) if f.turn == last}
            continue
        for hit in hit_candidates(rules, conversation, last):
            candidates.append(((u["id"], hit.category), hit.suppressed_by is None,
                               (hit_input(u["text"], hit.start, hit.end, hit.category), turn_input(u.get("context", "")) or None)))
    if backend is not None and candidates:
        probs = backend.probabilities("violation", [c[2] for c in candidates])[:, 1]
        keep, restore = backend.artefact.threshold("violation_keep"), backend.artefact.threshold("violation_restore")
        predicted = {c[0] for c, p in zip(candidates, probs) if hybrid_decision(c[1], p, keep, restore)}
    gold_turns = {pair[0] for pair in gold_pairs}
    false_turns = {pair[0] for pair in predicted - gold_pairs} - gold_turns
    return _set_scores(gold_pairs, predicted) | {"false_turns": len(false_turns), "agent_turns": len(agent),
                                                  "false_per_1000": 1000 * len(false_turns) / max(len(agent), 1)}


def _set_scores(gold: set, predicted: set) -> dict[str, float]:
    tp = len(gold & predicted)
    precision = tp / len(predicted) if predicted else 0.0
    recall = tp / len(gold) if gold else 0.0
    return {"precision": precision, "recall": recall, "f1": 2 * precision * recall / (precision + recall)
            if precision + recall else 0.0, "gold": len(gold), "predicted": len(predicted)}


def _parity(shipped, fp32, agent, customer, conversations) -> dict[str, Any]:
    """int8 ONNX vs fp32 torch on the test inputs: same predicted labels? largest logit difference?"""
    inputs = {"empathy": [turn_pair(u["text"], u.get("context")) for u in agent],
              "emotion": [turn_pair(u["text"], u.get("context")) for u in customer],
              "resolution": [(conversation_input(c.turns), None) for c in conversations]}
    result = {}
    for head, items in inputs.items():
        a, b = shipped.logits(items)[head], fp32.logits(items)[head]
        result[head] = {"agreement": float((a.argmax(1) == b.argmax(1)).mean()) if len(items) else 1.0,
                        "max_abs_logit_diff": float(np.abs(a - b).max()) if len(items) else 0.0}
    return result


def _table(reports: dict[str, dict[str, Any]]) -> list[str]:
    labels = next(iter(reports.values()))["labels"]
    lines = ["| system | " + " | ".join(f"{l} P / R / F1" for l in labels) + " | accuracy | n |",
             "|---|" + "---|" * (len(labels) + 2)]
    for system, r in reports.items():
        cells = [f"{r['per_label'][l]['precision']:.2f} / {r['per_label'][l]['recall']:.2f} / {r['per_label'][l]['f1']:.2f}"
                 for l in labels]
        lines.append(f"| {system} | " + " | ".join(cells) + f" | {r['accuracy']:.2f} | {r['n']} |")
    return lines


def _confusion(name: str, r: dict[str, Any]) -> list[str]:
    labels = r["labels"]
    lines = [f"Confusion ({name}; rows gold, columns predicted):", "",
             "| gold \\ predicted | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    lines += [f"| {label} | " + " | ".join(map(str, row)) + " |" for label, row in zip(labels, r["confusion"])]
    return lines + [""]


def write_card(path: Path, artefact: ModelArtefact, report: dict[str, Any]) -> None:
    """The model card, generated by the training script from the report."""
    heads = report["heads"]
    lines = [
        f"# {artefact.name} {artefact.version} — model card",
        "",
        "> **SYNTHETIC DATA — NO ACCURACY CLAIM.** Every labelled example below is synthetic: written by hand",
        "> from `models/ANNOTATION.md` (`models/data/pools.yaml`) and composed into conversations by a seeded",
        "> generator, because the real corpora (`../shared/corpora/`) were not available. The figures show the",
        "> pipeline works end to end and how the heads compare with the lexical baselines on the *same* synthetic",
        "> test split; they say nothing about real customer-service text. **No target is claimed as met.**",
        "",
        f"- checksum: `sha256:{artefact.checksum}` (results record `{artefact.provenance}`)",
        f"- encoder: BERT, {artefact.manifest['training']['layers']} layers × {artefact.manifest['training']['hidden']} hidden, "
        f"{report['parameters']:,} parameters; character vocabulary {artefact.manifest['vocabulary']}",
        "- files: " + ", ".join(f"`{name}`" for name in artefact.manifest["files"]),
        "- thresholds (tuned on dev): " + ", ".join(f"{h} {t:.3f}" for h, t in artefact.manifest["thresholds"].items()),
        f"- training time on {artefact.manifest['training']['device']}: pretraining {report['timings']['pretrain_s']} s, "
        f"total {report['timings']['total_s']} s",
        "",
        "## Data",
        "",
        "Pretraining text (unique utterances per source; test-split text excluded): "
        + ", ".join(f"`{Path(k).name}` {v}" for k, v in report["pretraining_sources"].items())
        + "; plus the labelled train and dev conversations.",
        "",
        "| split | conversations | agent utterances | customer utterances |", "|---|---|---|---|",
        *[f"| {s} | {v['conversations']} | {v['agent utterances']} | {v['customer utterances']} |"
          for s, v in report["sizes"].items()],
        "",
        f"Fine-tuning examples: {report['training examples']} (train split; plus, for training only, the rule packs' "
        "golden cases for the violation head and the 48 sample dialogues of `qa_engine/samples` for resolution and "
        "end emotion). Splits are by conversation and by pool line (no test line in training).",
        "Gap: the issue asks for ≥ 3,000 annotated real agent utterances and 600 real conversations; this set has",
        "a few hundred unique synthetic utterances recombined into 600 conversations.",
        "",
        "## Test split: model vs baselines",
        "",
        "### Empathy (agent turn)", "", *_table(heads["empathy"]), "", *_confusion("model", heads["empathy"]["model"]),
        "### Resolution (conversation)", "", *_table(heads["resolution"]), "",
        *_confusion("model", heads["resolution"]["model"]),
        *_confusion("qa.resolution.lexical.v1", heads["resolution"]["qa.resolution.lexical.v1"]),
        "### Customer emotion (customer turn)", "", *_table(heads["emotion"]), "",
        *_confusion("model", heads["emotion"]["model"]),
        "### Contextual violation (rule hit in context)", "",
        "Per rule hit (candidates: every hit of the rule matcher, excused ones included, customer speech excluded):", "",
        *_table(heads["violation"]["hits"]), "",
        "Hybrid: a hit the rules count stays unless the model's p(real) < keep; a hit context excused comes back only",
        "when p(real) ≥ restore (both tuned on dev: keep never drops a real dev hit, restore needs ≥ 95 % precision).", "",
        "Per utterance × category decision:", "",
        "| system | precision | recall | F1 | gold | predicted |", "|---|---|---|---|---|---|",
        *[f"| {k} | {v['precision']:.2f} | {v['recall']:.2f} | {v['f1']:.2f} | {v['gold']} | {v['predicted']} |"
          for k, v in heads["violation"]["decisions"].items()],
        "",
        "## int8 ONNX vs fp32 torch (test inputs)", "",
        "| head | same prediction | max abs logit difference |", "|---|---|---|",
        *[f"| {h} | {v['agreement']:.3f} | {v['max_abs_logit_diff']:.3f} |" for h, v in report["parity"].items()],
        "",
        "## Targets (issue #6) — not assessed on synthetic data", "",
        *[f"- {name} ≥ {value}: not claimed (synthetic test split)" for name, value in TARGETS.items()],
        "",
        "## Reproduce", "",
        "```bash", "qa-engine train            # or: python -m models.cli; --corpus ../shared/corpora once it exists", "```",
        "",
        "Training log:", "", "```", *report["log"], "```", "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
