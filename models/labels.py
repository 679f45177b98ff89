"""The labelled data set: hand-written synthetic pool lines → conversations and utterances (data files).

Every labelled line in ``data/pools.yaml`` was written and labelled by hand following
``ANNOTATION.md``; conversations are composed from them with a seeded generator, so
conversation labels (resolution, customer emotion at the end) follow from the lines chosen.
Splits are by pool line *and* by conversation: each line belongs to one split and a
conversation of a split draws only that split's lines, so no test text is seen in training.
This is **synthetic** data standing in for annotated real corpora; no accuracy claim is made on it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from models import DATA_DIR

SPLITS = ("train", "dev", "test")
_SPLIT_CYCLE = ("train", "train", "train", "dev", "test")  # a slot's i-th line → split: 60 / 20 / 20
CONVERSATIONS_PER_SPLIT = {"train": 360, "dev": 120, "test": 120}
SEED = 20261106
_AGENT = {"empathy": False, "compliance": []}
SLOT_DEFAULTS: dict[str, dict[str, Any]] = {
    "c_open": {"emotion": "negative"}, "c_follow": {"emotion": "neutral"},
    "c_end_resolved": {"emotion": "neutral"}, "c_end_unresolved": {"emotion": "negative"},
    "c_end_escalated": {"emotion": "neutral"},
    "a_greet": _AGENT, "a_empathy": {"empathy": True, "compliance": []}, "a_solution": _AGENT, "a_info": _AGENT,
    "a_risky": _AGENT, "a_escalate": _AGENT, "a_close": _AGENT,
}


@dataclass(frozen=True)
class Line:
    id: str
    slot: str
    text: str
    split: str
    labels: dict[str, Any] = field(hash=False)

    @property
    def role(self) -> str:
        return "customer" if self.slot.startswith("c_") else "agent"


def load_pools(path: Path = DATA_DIR / "pools.yaml") -> list[Line]:
    slots = yaml.safe_load(path.read_text(encoding="utf-8"))["slots"]
    lines = []
    for slot, entries in slots.items():
        for index, entry in enumerate(entries):
            entry = {"text": entry} if isinstance(entry, str) else dict(entry)
            labels = {**SLOT_DEFAULTS[slot], **{k: v for k, v in entry.items() if k != "text"}}
            lines.append(Line(f"{slot}.{index:02d}", slot, entry["text"], _SPLIT_CYCLE[index % len(_SPLIT_CYCLE)], labels))
    return lines


class _Composer:
    """Composes one split's conversations from that split's lines (seeded)."""

    def __init__(self, lines: list[Line], split: str, rng: random.Random) -> None:
        self.rng = rng
        self.by_slot: dict[str, list[Line]] = {}
        for line in lines:
            if line.split == split:
                self.by_slot.setdefault(line.slot, []).append(line)

    def pick(self, slot: str, **labels: Any) -> Line:
        choices = [ln for ln in self.by_slot[slot] if all(ln.labels.get(k) == v for k, v in labels.items())]
        return self.rng.choice(choices or self.by_slot[slot])

    def agent(self, *lines: Line) -> dict[str, Any]:
        """One agent turn made of one or more lines; its labels are their union."""
        return {"role": "agent", "text": "，".join(ln.text.rstrip("。！!") for ln in lines),
                "source": [f"synthetic:{ln.id}" for ln in lines],
                "empathy": any(ln.labels["empathy"] for ln in lines),
                "compliance": sorted({c for ln in lines for c in ln.labels["compliance"]})}

    @staticmethod
    def customer(line: Line) -> dict[str, Any]:
        return {"role": "customer", "text": line.text, "source": [f"synthetic:{line.id}"],
                "emotion": line.labels["emotion"]}

    def conversation(self) -> tuple[list[dict[str, Any]], str]:
        rng, pick = self.rng, self.pick
        opening = pick("c_open")
        turns = [self.customer(opening)]
        first = [pick("a_greet")] if rng.random() < 0.7 else []
        if rng.random() < (0.75 if opening.labels["emotion"] == "negative" else 0.15):
            first.append(pick("a_empathy"))
        if first:
            turns += [self.agent(*first)] if rng.random() < 0.5 else [self.agent(line) for line in first]
        body_slot = "a_solution" if opening.labels["emotion"] == "negative" else "a_info"
        body = [pick(body_slot) for _ in range(rng.randint(1, 2))]
        if rng.random() < 0.45:
            body.insert(rng.randrange(len(body) + 1), pick("a_risky"))
        for line in body:
            if turns[-1]["role"] == "agent" and rng.random() < 0.3:
                turns[-1] = self.agent(*[_line_of(s, self.by_slot) for s in turns[-1]["source"]], line)
            else:
                turns.append(self.agent(line))
        if rng.random() < 0.35:
            turns += [self.customer(pick("c_follow")), self.agent(pick(rng.choice(["a_solution", "a_info"])))]
        outcome = rng.choices(["resolved", "unresolved", "escalated"], weights=[0.55, 0.25, 0.2])[0]
        if outcome == "escalated":
            turns += [self.agent(pick("a_escalate")), self.customer(pick("c_end_escalated"))]
        else:
            turns.append(self.customer(pick(f"c_end_{outcome}")))
        if rng.random() < (0.8 if outcome == "resolved" else 0.4):
            turns.append(self.agent(pick("a_close")))
        return turns, outcome


def _line_of(source: str, by_slot: dict[str, list[Line]]) -> Line:
    line_id = source.removeprefix("synthetic:")
    return next(ln for ln in by_slot[line_id.split(".")[0]] if ln.id == line_id)


def generate(lines: list[Line], seed: int = SEED) -> list[dict[str, Any]]:
    """The labelled conversations of every split, with ids, sources and labels."""
    conversations = []
    for split in SPLITS:
        composer = _Composer(lines, split, random.Random(f"{seed}:{split}"))
        for index in range(CONVERSATIONS_PER_SPLIT[split]):
            turns, outcome = composer.conversation()
            last_customer = next(t for t in reversed(turns) if t["role"] == "customer")
            conversations.append({"conversation_id": f"syn-{split}-{index:04d}", "split": split,
                                  "source": f"synthetic: generated from models/data/pools.yaml (seed {seed})",
                                  "labels": {"resolution": outcome, "emotion_end": last_customer["emotion"]},
                                  "turns": turns})
    return conversations


def utterances(conversations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Unique (split, role, text) turns with their labels, first conversation and the turn before."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for conv in conversations:
        for index, turn in enumerate(conv["turns"]):
            key = (conv["split"], turn["role"], turn["text"])
            if key in rows:
                continue
            context = next((t["text"] for t in reversed(conv["turns"][:index]) if t["role"] != turn["role"]), "")
            labels = {k: turn[k] for k in ("empathy", "compliance", "emotion") if k in turn}
            rows[key] = {"id": f"u-{len(rows):05d}", "split": conv["split"], "role": turn["role"], "text": turn["text"],
                         "context": context, "conversation_id": conv["conversation_id"], "source": turn["source"],
                         **labels}
    return list(rows.values())


def write_dataset(directory: Path = DATA_DIR, seed: int = SEED) -> dict[str, int]:
    """(Re)write ``conversations.jsonl`` and ``utterances.jsonl`` from the pools; returns counts."""
    conversations = generate(load_pools(directory / "pools.yaml"), seed)
    rows = utterances(conversations)
    _write_jsonl(directory / "conversations.jsonl", conversations)
    _write_jsonl(directory / "utterances.jsonl", rows)
    return {"conversations": len(conversations), "utterances": len(rows),
            "agent_utterances": sum(r["role"] == "agent" for r in rows)}


@dataclass(frozen=True)
class Dataset:
    conversations: list[dict[str, Any]]
    utterances: list[dict[str, Any]]

    def split(self, name: str) -> Dataset:
        return Dataset([c for c in self.conversations if c["split"] == name],
                       [u for u in self.utterances if u["split"] == name])


def load_dataset(directory: Path = DATA_DIR) -> Dataset:
    return Dataset(_read_jsonl(directory / "conversations.jsonl"), _read_jsonl(directory / "utterances.jsonl"))


REAL_DIR = DATA_DIR / "real"
EMOTION_OF_SATISFACTION = ("negative", "neutral", "positive")  # USDA 3-class: 0 dissatisfied, 1 neutral, 2 satisfied


def load_compliance_lines(paths: list[Path]) -> list[dict[str, Any]]:
    """Blind hand-written agent lines (``benchmarks/data/compliance_lines*.jsonl``), every split."""
    return [json.loads(line) for path in paths for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_real_dataset(corpora: Path, label_dir: Path = REAL_DIR) -> Dataset:
    """The labelled real corpora: label files (by reference) joined with the converted conversations.

    Agent turns carry the adjudicated empathy / compliance labels; customer turns of JDDC carry
    the raters' satisfaction as emotion (nothing relabelled); every labelled conversation carries
    resolution and emotion at the end. Splits come from the conversation id (``models.annotation``).
    """
    from models.annotation import split_of, turn_id
    from models.corpus import conversations as corpus_conversations

    agent = {row["id"]: row for row in _read_jsonl(label_dir / "agent_turns.jsonl")}
    labelled = {row["id"]: row for row in _read_jsonl(label_dir / "conversations.jsonl")}
    records, rows = [], []
    for conversation in corpus_conversations(corpora):
        cid, split = conversation.conversation_id, split_of(conversation.conversation_id)
        if cid not in labelled:  # the label files say which conversations are in the data set
            continue
        satisfaction = conversation.metadata.get("satisfaction") or [None] * len(conversation.turns)
        turns = []
        for index, turn in enumerate(conversation.turns):
            tid = turn_id(cid, index)
            context = next((t.text for t in reversed(conversation.turns[:index]) if t.role != turn.role), "")
            row = {"id": tid, "split": split, "role": turn.role.value, "text": turn.text, "context": context,
                   "conversation_id": cid, "source": tid}
            if tid in agent:
                row |= {"empathy": bool(agent[tid]["empathy"]), "compliance": list(agent[tid]["compliance"])}
            elif turn.role.value == "customer" and satisfaction[index] is not None:
                row["emotion"] = EMOTION_OF_SATISFACTION[satisfaction[index]]
            if "empathy" in row or "emotion" in row:
                rows.append(row)
            turns.append({"role": turn.role.value, "text": turn.text})
        if cid in labelled:
            records.append({"conversation_id": cid, "split": split, "source": cid,
                            "labels": {"resolution": labelled[cid]["resolution"],
                                       "emotion_end": labelled[cid]["emotion_end"]},
                            "satisfaction": conversation.metadata.get("overall_satisfaction"), "turns": turns})
    return Dataset(records, rows)


def sample_dialogues() -> list[dict[str, Any]]:
    """The project's 48 hand-labelled sample dialogues (qa_engine/samples) as extra *training* conversations.

    Written and labelled separately from our pools (resolution, customer emotion at the end),
    so they add phrasing the pools lack; never part of the test split.
    """
    from importlib import resources

    text = resources.files("qa_engine").joinpath("samples/synthetic_dialogues.yaml").read_text(encoding="utf-8")
    records = []
    for dialogue in yaml.safe_load(text)["dialogues"]:
        labels = dialogue["labels"]
        records.append({"conversation_id": dialogue["id"], "split": "train", "source": "qa_engine/samples",
                        "labels": {"resolution": labels["resolution"], "emotion_end": labels["customer_emotion_end"]},
                        "turns": [{"role": t["role"], "text": t["text"]} for t in dialogue["turns"]]})
    return records


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


if __name__ == "__main__":
    print(write_dataset())
