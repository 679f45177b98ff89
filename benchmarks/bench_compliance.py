"""Compliance precision, recall and evasion on hand-written agent lines the rule packs were not written from.

``benchmarks/data/compliance_lines*.jsonl``: realistic agent turns (with the customer turn before them)
written *blind* — by helper sessions that never read the rule packs, their golden cases or the tests —
following ``models/ANNOTATION.md``, each labelled with its violation categories, its form (``plain``
violation, ``disguised`` violation, innocent ``lookalike`` of a trigger word, ``clean``), the phenomenon
(``class``) and a split: ``dev`` lines are the ones error classes may be studied on (and the model's turn
head is trained on), ``tune`` lines (round 5 on) only set the turn head's threshold, ``test`` lines are
only reported. Our own hand-written text (no corpus text), so it lives in the repository. Round 1
(``compliance_lines.jsonl``, 427 lines) is split dev / test; round 2 (``compliance_lines_round2.jsonl``),
written later by another session after the round-1 dev fixes, is all dev.

A line is *flagged* when the pipeline counts a violation of a compliance category on the agent turn; a
flagged violation line is *found* when one of its labelled categories is among those counted. Prints,
per system and split: precision, recall, disguised-form recall, the false-alarm rate on innocent
look-alikes and recall per category, beside issue #11's targets, then the misses and false alarms of
the dev split by class (``--show``). Systems: the default rules (``qa.rules.v1``), the bare lexicon
(every hit counts: the anchor) and the models configuration (rule hits decided in context).

    python benchmarks/bench_compliance.py [--show dev] [--model models/runs/…/model-…]
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from models.labels import load_compliance_lines
from qa_engine.findings import Finding, FindingKind
from qa_engine.pipeline import Pipeline
from qa_engine.schema import Conversation, Role, Turn

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data"
TARGETS = {"precision": 0.95, "recall": 0.92, "disguised recall": 0.95, "look-alike false alarms (at most)": 0.05}


def line_conversation(line: dict) -> Conversation:
    turns = ([Turn(role=Role.CUSTOMER, text=line["context"])] if line.get("context") else []) + \
            [Turn(role=Role.AGENT, text=line["text"])]
    return Conversation(conversation_id=line["id"], turns=tuple(turns))


def flagged_categories(findings: list[Finding], turn: int, categories: set[str]) -> set[str]:
    return {f.category for f in findings if f.kind is FindingKind.VIOLATION and f.turn == turn
            and f.suppressed_by is None and f.category in categories}


def measure(lines: list[dict], found: Callable[[dict], set[str]]) -> dict[str, float | int]:
    """Line-level scores of one system over ``lines``."""
    flagged = {line["id"]: found(line) for line in lines}
    violations = [line for line in lines if line["violation"]]
    innocent = [line for line in lines if not line["violation"]]
    hit = [line for line in violations if flagged[line["id"]] & set(line["categories"])]
    false_alarms = [line for line in innocent if flagged[line["id"]]]
    wrong_category = [line for line in violations if flagged[line["id"]] and line not in hit]
    predicted = len(hit) + len(false_alarms) + len(wrong_category)
    disguised = [line for line in violations if line["form"] == "disguised"]
    lookalike = [line for line in innocent if line["form"] == "lookalike"]
    result: dict[str, float | int] = {
        "precision": len(hit) / predicted if predicted else 0.0,
        "recall": len(hit) / len(violations) if violations else 0.0,
        "disguised recall": sum(line in hit for line in disguised) / len(disguised) if disguised else 0.0,
        "look-alike false alarms (at most)": sum(line in false_alarms for line in lookalike) / len(lookalike)
        if lookalike else 0.0,
        "lines": len(lines), "violations": len(violations)}
    for category in sorted({c for line in violations for c in line["categories"]}):
        mine = [line for line in violations if category in line["categories"]]
        result[f"recall {category}"] = sum(category in flagged[line["id"]] for line in mine) / len(mine)
    return result


def systems(model_dir: Path | None = None) -> dict[str, Callable[[dict], set[str]]]:
    from models.evaluate import models_config

    rules_only = Pipeline.from_config()
    with_models = Pipeline.from_config(models_config(model_dir))
    compliance = set(rules_only.scorecard.sections["compliance"].categories)
    rule_detector = next(d for d in rules_only.detectors if d.name == "qa.rules.v1")

    def by(pipeline: Pipeline) -> Callable[[dict], set[str]]:
        return lambda line: flagged_categories(pipeline.findings(conversation := line_conversation(line)),
                                               len(conversation.turns) - 1, compliance)

    def bare(line: dict) -> set[str]:
        conversation = line_conversation(line)
        return flagged_categories([f.model_copy(update={"suppressed_by": None}) for f in rule_detector.explain(conversation)
                                   if not (f.suppressed_by or "").startswith("role")],
                                  len(conversation.turns) - 1, compliance)

    return {"qa.rules.v1 (default)": by(rules_only), "bare lexicon (anchor)": bare,
            "models configuration": by(with_models)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=Path, nargs="+", default=sorted(DATA.glob("compliance_lines*.jsonl")))
    parser.add_argument("--show", choices=("none", "dev", "test"), default="dev",
                        help="list the default rules' misses and false alarms of this split")
    parser.add_argument("--model", type=Path, help="the models configuration's artefact (default: the shipped one)")
    args = parser.parse_args()
    lines = load_compliance_lines(args.lines)
    forms = Counter((line["split"], line["form"]) for line in lines)
    print(f"{len(lines)} hand-written agent lines ({', '.join(p.name for p in args.lines)}): "
          + ", ".join(f"{split}/{form} {n}" for (split, form), n in sorted(forms.items())))
    found = systems(args.model)
    for split in [*sorted({line["split"] for line in lines}), "all"]:
        part = [line for line in lines if split == "all" or line["split"] == split]
        results = {name: measure(part, system) for name, system in found.items()}
        keys = [k for k in next(iter(results.values())) if k not in ("lines", "violations")]
        print(f"\n{split}: {len(part)} lines, {sum(line['violation'] for line in part)} violations")
        print(f"  {'measure':<36}" + "".join(f"{name:>26}" for name in results) + f"{'target':>10}")
        for key in keys:
            target = TARGETS.get(key)
            print(f"  {key:<36}" + "".join(f"{r[key]:>26.3f}" for r in results.values())
                  + (f"{('≤ ' if 'at most' in key else '≥ ') + format(target, '.2f'):>10}" if target else ""))
    if args.show != "none":
        default = found["qa.rules.v1 (default)"]
        print(f"\nqa.rules.v1 on the {args.show} split — misses and false alarms:")
        for line in (line for line in lines if line["split"] == args.show):
            flagged = default(line)
            if line["violation"] and not flagged & set(line["categories"]):
                print(f"  MISS  {line['id']} [{line['form']}/{line['class']}] {line['categories']} {line['text']}")
            elif not line["violation"] and flagged:
                print(f"  FALSE {line['id']} [{line['form']}/{line['class']}] {sorted(flagged)} {line['text']}")


if __name__ == "__main__":
    main()
