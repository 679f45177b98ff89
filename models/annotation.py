"""Annotation on the real corpora: which units get labelled, the batches annotators read, and agreement.

Labels are stored by reference (``conversation_id#turn_index`` and ``conversation_id``), never with
the corpus text, because the dialogue sets are research-only (``../shared/corpora/SOURCES.md``):
``models/data/real/`` joins back to ``../shared/corpora`` at training time.

Selection (deterministic): every conversation gets a conversation label; agent turns are labelled
for every conversation of the ECD sample and for JDDC conversations taken in a hash order until
``AGENT_TURNS_TARGET`` is reached, plus every agent turn anywhere that a rule pack hits (so the
contextual-violation head and the false-alarm count see them all). A fixed share of turns and
conversations is given to two annotators independently; ``kappa`` measures their agreement.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from qa_engine.schema import Conversation, Role

AGENT_TURNS_TARGET = 3300
CONTEXT_TURNS = 2
CONTEXT_CHARS = 160
SPLITS = (("test", 0.20), ("dev", 0.15), ("train", 0.65))


def stable_fraction(key: str) -> float:
    """A number in [0, 1) fixed by ``key`` alone (the same on every machine and Python)."""
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:12], 16) / float(16**12)


def split_of(conversation_id: str) -> str:
    """train / dev / test by conversation; the test share is never used for training or thresholds."""
    point, edge = stable_fraction("split:" + conversation_id), 0.0
    for name, share in SPLITS:
        edge += share
        if point < edge:
            return name
    return SPLITS[-1][0]


def turn_id(conversation_id: str, index: int) -> str:
    return f"{conversation_id}#{index}"


def select_agent_turns(conversations: Sequence[Conversation], rule_hit_ids: set[str]) -> list[str]:
    """Ids of the agent turns to label: whole conversations (ECD first, then JDDC in hash order) until
    the target, plus every rule-hit turn."""
    order = sorted(conversations, key=lambda c: (not c.conversation_id.startswith("ecd"),
                                                stable_fraction("pick:" + c.conversation_id)))
    chosen: list[str] = []
    for conversation in order:
        if len(chosen) >= AGENT_TURNS_TARGET:
            break
        chosen += [turn_id(conversation.conversation_id, i) for i, t in enumerate(conversation.turns)
                   if t.role == Role.AGENT]
    taken = set(chosen)
    return chosen + sorted(rule_hit_ids - taken)


def agent_item(conversation: Conversation, index: int) -> dict:
    """One agent turn as an annotator reads it: the text and the turns just before it."""
    context = []
    for turn in conversation.turns[max(0, index - CONTEXT_TURNS):index]:
        speaker = "客户" if turn.role == Role.CUSTOMER else "客服"
        context.append(f"{speaker}: {turn.text[:CONTEXT_CHARS]}")
    return {"id": turn_id(conversation.conversation_id, index), "context": context,
            "text": conversation.turns[index].text}


def conversation_item(conversation: Conversation) -> dict:
    lines = [("客户: " if t.role == Role.CUSTOMER else "客服: ") + t.text for t in conversation.turns]
    return {"id": conversation.conversation_id, "transcript": lines}


def deal(ids: Sequence[str], annotators: int, overlap: int, seed: str) -> list[list[str]]:
    """Split ``ids`` among annotators; ``overlap`` ids of annotator k+1's share also go to annotator k."""
    shares = [list(ids[k::annotators]) for k in range(annotators)]
    extra = [[] for _ in range(annotators)]
    per = overlap // annotators
    for k in range(annotators):
        nxt = shares[(k + 1) % annotators]
        extra[k] = sorted(nxt, key=lambda i: stable_fraction(seed + i))[:per]
    return [share + more for share, more in zip(shares, extra)]


def kappa(first: Sequence[object], second: Sequence[object]) -> float:
    """Cohen's κ for two annotators' labels of the same units."""
    n = len(first)
    if n == 0:
        return float("nan")
    labels = sorted(set(first) | set(second), key=str)
    observed = sum(a == b for a, b in zip(first, second)) / n
    expected = sum((list(first).count(lab) / n) * (list(second).count(lab) / n) for lab in labels)
    return 1.0 if expected == 1.0 else (observed - expected) / (1.0 - expected)


def read_labels(paths: Iterable[Path]) -> dict[str, list[dict]]:
    """Every label row of the annotators' files, grouped by unit id (one row per annotator)."""
    by_id: dict[str, list[dict]] = {}
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            row["annotator"] = path.stem
            by_id.setdefault(row["id"], []).append(row)
    return by_id


def merge(by_id: dict[str, list[dict]], fields: Sequence[str], adjudicated: dict[str, dict]) -> list[dict]:
    """One final row per unit: the single annotator's labels, the two annotators' when they agree, or the
    guideline owner's decision (``adjudicated``, with its reason) when they do not."""
    rows = []
    for unit, labels in sorted(by_id.items()):
        values = [{f: row[f] for f in fields} for row in labels]
        row = {"id": unit, **values[0], "annotators": [r["annotator"] for r in labels]}
        if len(values) > 1 and any(v != values[0] for v in values[1:]):
            if unit not in adjudicated:
                raise ValueError(f"{unit}: annotators disagree ({values}) and no adjudication is recorded")
            row |= {f: adjudicated[unit][f] for f in fields} | {"adjudicated": adjudicated[unit]["why"]}
        rows.append(row)
    return rows


def agreement(by_id: dict[str, list[dict]], labels: dict[str, Callable[[dict], object]]) -> dict[str, dict]:
    """Cohen's κ and raw agreement per label over the units two annotators labelled."""
    double = [rows for rows in by_id.values() if len(rows) >= 2]
    report = {}
    for name, value in labels.items():
        first, second = [value(r[0]) for r in double], [value(r[1]) for r in double]
        report[name] = {"units": len(double), "kappa": round(kappa(first, second), 3),
                        "agreement": round(sum(a == b for a, b in zip(first, second)) / max(len(double), 1), 3),
                        "disagreements": sum(a != b for a, b in zip(first, second))}
    return report
