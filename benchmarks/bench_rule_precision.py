"""False alarms of the rule packs on every real agent turn of the corpora, by rule, beside the bare lexicon.

Every agent turn of ``../shared/corpora`` (JDDC + ECD) is checked by ``qa.rules.v1``; each counted hit
is compared with the turn's label in ``models/data/real/agent_turns.jsonl`` (every turn a rule hits is
labelled there). The anchor is the same matcher with no context stages (every hit counts: what a
plain lexicon flags); the models configuration decides each hit in context and adds what its turn
head raises on its own (rule ids ``conduct.model`` / ``efficacy.model``; every agent turn is
labelled). Prints hits, real, false and false alarms per 1,000 agent turns per rule, and
the false *turns* (a turn with any false hit and no real violation) per 1,000 — the issue's measure.

    python benchmarks/bench_rule_precision.py [--corpora ../shared/corpora] [--split test] [--model DIR]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from models.annotation import split_of, turn_id
from models.corpus import conversations
from models.detectors import make_hybrid_violation
from models.labels import REAL_DIR
from qa_engine.findings import FindingKind
from qa_engine.schema import Role
from rules.detector import make_rule_detector

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=ROOT.parent / "shared" / "corpora")
    parser.add_argument("--split", choices=("all", "train", "dev", "test"), default="all",
                        help="only conversations of this split (test: never used to write the packs' exceptions)")
    parser.add_argument("--model", type=Path, help="the models configuration's artefact (default: the shipped one)")
    args = parser.parse_args()
    labels = {json.loads(line)["id"]: json.loads(line)
              for line in (REAL_DIR / "agent_turns.jsonl").read_text(encoding="utf-8").splitlines()}
    rules = make_rule_detector()
    items = [c for c in conversations(args.corpora) if args.split == "all" or split_of(c.conversation_id) == args.split]
    agent_turns = sum(t.role is Role.AGENT for c in items for t in c.turns)
    hybrid = make_hybrid_violation(model_dir=str(args.model) if args.model else None)
    systems = {"qa.rules.v1 (context stages)": lambda c: rules.detect(c),
               "bare lexicon (every hit counts)": lambda c: [f for f in rules.explain(c)
                                                             if not (f.suppressed_by or "").startswith("role")],
               f"models configuration ({hybrid.name}: hits decided in context + turn head)": hybrid.detect}
    unlabelled: list[str] = []
    print(f"{agent_turns} real agent turns in {len(items)} conversations (split: {args.split})")
    for name, detect in systems.items():
        real, false = Counter(), Counter()
        false_turns, true_turns = set(), set()
        for conversation in items:
            for f in detect(conversation):
                if f.kind is not FindingKind.VIOLATION or conversation.turns[f.turn].role is not Role.AGENT:
                    continue
                tid = turn_id(conversation.conversation_id, f.turn)
                label = labels.get(tid)
                if label is None:
                    unlabelled.append(f"{tid} {f.rule_id} {f.evidence!r}")
                    continue
                if f.category in label["compliance"]:
                    real[f.rule_id] += 1
                    true_turns.add(tid)
                else:
                    false[f.rule_id] += 1
                    if not label["compliance"]:
                        false_turns.add(tid)
        print(f"\n{name}: false violation turns {len(false_turns)} = {1000 * len(false_turns) / agent_turns:.2f} "
              f"per 1,000 agent turns; turns with a real violation found {len(true_turns)}")
        print(f"  {'rule':<34} {'real':>5} {'false':>6} {'false / 1,000 turns':>20}")
        for rule in sorted(set(real) | set(false), key=lambda r: (-false[r], r)):
            print(f"  {rule:<34} {real[rule]:>5} {false[rule]:>6} {1000 * false[rule] / agent_turns:>20.2f}")
    if unlabelled:
        print("\nhits on turns without a label (label them in models/data/real):", *sorted(set(unlabelled)), sep="\n  ")


if __name__ == "__main__":
    main()
