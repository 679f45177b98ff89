"""Rule matching: our normalise+match beside raw pyahocorasick and a naive regex, in one run.

Prints, on the bundled sample month (each conversation's turns matched together, as the rule
detector does):
- throughput (MB of UTF-8 text per second) of normalise + Aho-Corasick + regexes, of the whole
  rule detector (context stages included), of the anchor — raw pyahocorasick over the same texts
  already normalised (phonetic view), the same automaton, no offsets — and of one Python ``re``
  alternation of the pack terms with no normalisation; the target is within 3x of the anchor;
- p50/p99 latency per 100-character utterance (the live path: one text at a time);
- how many generated evasion cases (``rules.evasions``: traditional, full-width, spaces, symbols,
  emoji, zero-width, pinyin, whole-word pinyin, pinyin initials and homophone spellings of each
  pack term) each one catches.

    python benchmarks/bench_rules.py [--repeat 20] [--corpus ../shared/corpora]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import time
from pathlib import Path

from qa_engine.schema import Conversation, Turn
from qa_engine.pipeline import SCORE_BATCH
from qa_engine.text import TextBatch
from rules.detector import RuleDetector
from rules.evasions import evasion_cases
from rules.pack import load_rulebook

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "qa_engine" / "samples" / "sample_month.jsonl"


def conversations(corpus: Path | None) -> tuple[str, list[list[str]]]:
    """Turn texts grouped by conversation: the sample month, or the real corpora (``--corpus``)."""
    if corpus is not None:
        from models.corpus import conversations as real

        return f"{corpus} (real)", [[turn.text for turn in c.turns] for c in real(corpus)]
    with open(SAMPLE, encoding="utf-8") as handle:
        return SAMPLE.name, [[turn["text"] for turn in json.loads(line)["turns"]] for line in handle]


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1] if len(values) > 1 else values[0]


def as_agent(texts: list[str]) -> Conversation:
    """Every text as an agent turn, so the detector reads exactly the texts the others read."""
    return Conversation(conversation_id="bench", turns=tuple(Turn(role="agent", text=text) for text in texts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="passes over the corpus for throughput")
    parser.add_argument("--corpus", type=Path, help="the real corpora (../shared/corpora) instead of the sample month")
    args = parser.parse_args()

    book = load_rulebook()
    detector = RuleDetector(book)
    compiled = detector._compiled  # the matchers the detector runs
    terms = sorted({term for rule in book.rules for term in rule.terms})
    naive = re.compile("|".join(map(re.escape, sorted(terms, key=len, reverse=True))))
    source, groups = conversations(args.corpus)
    texts = [text for group in groups for text in group]
    megabytes = sum(len(t.encode("utf-8")) for t in texts) * args.repeat / 1e6
    automaton = compiled.terms._automaton

    def prenormalised(group: list[str]) -> str:
        """The anchor's input: the texts already normalised to the view the automaton reads."""
        return compiled.terms.phonetic(TextBatch(group).compact)[0]

    def anchor(text: str) -> int:
        return sum(1 for _ in automaton.iter(text))

    def ours(group: list[str]) -> int:
        return sum(map(len, detector.matches(TextBatch(group)).values()))

    def full(conversations: list[Conversation]) -> int:
        return sum(map(len, detector.detect_many(conversations)))

    def baseline(group: list[str]) -> int:
        return sum(1 for text in group for _ in naive.finditer(text))

    contenders = {"raw pyahocorasick (anchor)": (anchor, prenormalised), "naive re alternation": (baseline, list),
                  "normalise+match (ours)": (ours, list),
                  "rule detector (ours)": (full, lambda group: [as_agent(texts) for texts in group])}
    # one conversation at a time (the live path), and SCORE_BATCH conversations at a time (score, batch)
    units = {"conversation": [[group] for group in groups],
             f"{SCORE_BATCH} conversations": [groups[i:i + SCORE_BATCH] for i in range(0, len(groups), SCORE_BATCH)]}
    throughput: dict[tuple[str, str], float] = {}
    for unit, batches in units.items():
        for name, (fn, prepare) in contenders.items():
            inputs = [prepare(batch) if name == "rule detector (ours)" else prepare([t for group in batch for t in group])
                      for batch in batches]
            fn(inputs[0])  # warm up tables and automata
            started = time.perf_counter()
            for _ in range(args.repeat):
                for item in inputs:
                    fn(item)
            throughput[unit, name] = megabytes / (time.perf_counter() - started)

    rng = random.Random(1)
    hundred = []
    while len(hundred) < 2000:
        chunk = "".join(rng.choice(texts) for _ in range(6))
        if len(chunk) >= 100:
            hundred.append(chunk[:100])
    latency = {}
    for name, (fn, prepare) in contenders.items():  # one 100-character text at a time, prepared untimed
        samples = []
        for item in (prepare([[text]] if name == "rule detector (ours)" else [text]) for text in hundred):
            started = time.perf_counter_ns()
            fn(item)
            samples.append((time.perf_counter_ns() - started) / 1e6)
        latency[name] = (statistics.median(samples), percentile(samples, 0.99))

    cases = evasion_cases(terms)
    caught = {name: 0 for name in contenders if not name.startswith("raw")}
    by_form: dict[str, list[int]] = {}
    for form, term, text in cases:
        hits = {"naive re alternation": baseline([text]) > 0, "normalise+match (ours)": ours([text]) > 0,
                "rule detector (ours)": full([as_agent([text])]) > 0}
        for name, hit in hits.items():
            caught[name] += hit
        row = by_form.setdefault(form, [0, 0, 0])
        row[0] += 1
        row[1] += hits["naive re alternation"]
        row[2] += hits["rule detector (ours)"]

    print(f"corpus: {len(texts)} utterances in {len(groups)} conversations from {source}, "
          f"{megabytes / args.repeat:.2f} MB x {args.repeat} passes; {len(terms)} terms, "
          f"{sum(len(r.regexes) for r in book.rules)} regexes")
    print(f"{'MB/s, matched a unit at a time:':34}" + "".join(f"{unit:>18}" for unit in units)
          + f"{'p50 ms':>9}{'p99 ms':>9}{'evasions caught':>20}")
    for name in contenders:
        p50, p99 = latency[name]
        evasions = "(pre-normalised)" if name not in caught else \
            f"{caught[name]:>5}/{len(cases)} ({caught[name] / len(cases):.0%})"
        print(f"{name:34}" + "".join(f"{throughput[unit, name]:>18.1f}" for unit in units)
              + f"{p50:>9.3f}{p99:>9.3f}{evasions:>20}")
    for unit in units:
        anchor_mb = throughput[unit, "raw pyahocorasick (anchor)"]
        print(f"{unit:>18}: normalise+match {anchor_mb / throughput[unit, 'normalise+match (ours)']:.1f}x the "
              f"anchor's time (target <= 3x), the whole rule detector {anchor_mb / throughput[unit, 'rule detector (ours)']:.1f}x")
    print("\nevasion cases by form          cases   naive    ours")
    for form, (count, naive_hits, our_hits) in sorted(by_form.items()):
        print(f"  {form:28}{count:>6}{naive_hits:>8}{our_hits:>8}")


if __name__ == "__main__":
    main()
