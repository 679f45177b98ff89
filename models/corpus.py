"""Dialogue text for pretraining: a corpus folder in whatever shape it comes, plus the bundled text.

``../shared/corpora/`` (real public customer-service dialogues) was not available when this
was written, so the loader is deliberately tolerant: it walks a folder and reads JSON, JSONL,
CSV/TSV, TXT and YAML files, recognising qa-engine conversations, common ``messages`` /
``dialogue`` / ``turns`` layouts, turn-per-row tables and ``客服：…`` / ``顾客：…`` text
transcripts. Unknown layouts contribute their plain text fields as role-less utterances.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


ROLE_NAMES = {
    "agent": ("agent", "客服", "商家", "坐席", "售后", "assistant", "staff", "seller", "waiter", "a"),
    "customer": ("customer", "顾客", "用户", "买家", "客户", "user", "buyer", "client", "q"),
    "bot": ("bot", "机器人", "智能客服", "robot"),
    "system": ("system", "系统"),
}
_ROLE_OF = {name.lower(): role for role, names in ROLE_NAMES.items() for name in names}
_SPEAKER_LINE = re.compile(r"^\s*([^\s:：]{1,6})\s*[:：]\s*(.+)$")
_TURN_KEYS = ("turns", "messages", "dialogue", "dialog", "conversation", "utterances", "content")
_TEXT_KEYS = ("text", "content", "utterance", "value", "sentence", "message")
_ROLE_KEYS = ("role", "speaker", "from", "sender")
SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".txt", ".yaml", ".yml")


@dataclass(frozen=True)
class Dialogue:
    """One dialogue (or a lone utterance): turns as (role, text); role ``unknown`` when not said."""

    source: str
    turns: tuple[tuple[str, str], ...]

    def texts(self) -> list[str]:
        return [text for _, text in self.turns]


def role_of(name: Any) -> str:
    return _ROLE_OF.get(str(name).strip().lower(), "unknown")


def load_corpus(root: Path) -> Iterator[Dialogue]:
    """Every dialogue in the files under ``root`` (a file or a folder), in path order."""
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES)
    for path in files:
        reader = _READERS[path.suffix.lower()]
        yield from (d for d in reader(path) if d.turns)


def _read_jsonl(path: Path) -> Iterator[Dialogue]:
    with open(path, encoding="utf-8", errors="replace") as handle:
        for row, line in enumerate(handle, 1):
            try:
                yield _from_record(json.loads(line), f"{path.name}:{row}")
            except json.JSONDecodeError:
                continue


def _read_json(path: Path) -> Iterator[Dialogue]:
    data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    if isinstance(data, dict):
        data = next((data[k] for k in ("data", "dialogues", "conversations") if isinstance(data.get(k), list)), [data])
    for row, record in enumerate(data, 1):
        yield _from_record(record, f"{path.name}:{row}")


def _read_yaml(path: Path) -> Iterator[Dialogue]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if "cases" in data:  # a rule pack's golden cases: context turns, then the case text
        for row, case in enumerate(data["cases"], 1):
            turns = [(t.get("role", "customer"), t["text"]) for t in case.get("context", [])]
            yield Dialogue(f"{path.name}:{row}", (*turns, (case.get("role", "agent"), case["text"])))
        return
    for row, record in enumerate(data.get("dialogues", []), 1):
        yield _from_record(record, f"{path.name}:{record.get('id', row)}")


def _read_table(path: Path) -> Iterator[Dialogue]:
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
    if not rows:
        return
    text_key = next((k for k in rows[0] if k and k.lower() in _TEXT_KEYS), None)
    if text_key is None:
        return
    role_key = next((k for k in rows[0] if k and k.lower() in _ROLE_KEYS), None)
    group_key = next((k for k in rows[0] if k and k.lower() in ("conversation_id", "session_id", "dialogue_id")), None)
    groups: dict[str, list[tuple[str, str]]] = {}
    for row, record in enumerate(rows, 2):
        key = record[group_key] if group_key else str(row)
        groups.setdefault(key, []).append((role_of(record[role_key]) if role_key else "unknown", record[text_key] or ""))
    for key, turns in groups.items():
        yield Dialogue(f"{path.name}:{key}", tuple(t for t in turns if t[1].strip()))


def _read_txt(path: Path) -> Iterator[Dialogue]:
    """Blank-line separated blocks; ``客服：…`` lines become turns, other lines role-less turns."""
    blocks = re.split(r"\n\s*\n", path.read_text(encoding="utf-8", errors="replace"))
    for row, block in enumerate(blocks, 1):
        turns = []
        for line in filter(str.strip, block.splitlines()):
            match = _SPEAKER_LINE.match(line)
            role = role_of(match.group(1)) if match else "unknown"
            turns.append((role, match.group(2).strip() if match and role != "unknown" else line.strip()))
        yield Dialogue(f"{path.name}:{row}", tuple(turns))


def _from_record(record: Any, source: str) -> Dialogue:
    if isinstance(record, str):
        return Dialogue(source, (("unknown", record),))
    if isinstance(record, list):
        return Dialogue(source, tuple(_turn(item) for item in record if _turn(item)[1]))
    if not isinstance(record, dict):
        return Dialogue(source, ())
    source = f"{source}:{record['conversation_id']}" if "conversation_id" in record else source
    for key in _TURN_KEYS:
        if isinstance(record.get(key), list):
            return Dialogue(source, tuple(t for t in map(_turn, record[key]) if t[1]))
    text = next((record[k] for k in _TEXT_KEYS if isinstance(record.get(k), str)), "")
    return Dialogue(source, ((role_of(next((record[k] for k in _ROLE_KEYS if k in record), "")), text),) if text else ())


def _turn(item: Any) -> tuple[str, str]:
    if isinstance(item, str):
        match = _SPEAKER_LINE.match(item)
        if match and role_of(match.group(1)) != "unknown":
            return role_of(match.group(1)), match.group(2).strip()
        return "unknown", item.strip()
    if isinstance(item, dict):
        text = next((item[k] for k in _TEXT_KEYS if isinstance(item.get(k), str)), "")
        return role_of(next((item[k] for k in _ROLE_KEYS if k in item), "")), text.strip()
    return "unknown", ""


_READERS = {".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_table, ".tsv": _read_table,
            ".txt": _read_txt, ".yaml": _read_yaml, ".yml": _read_yaml}


def bundled_sources() -> list[Path]:
    """The synthetic text shipped with the project: the sample dialogues and the rule packs' golden cases.

    (Training adds the train and dev splits of the labelled set itself.) The sample month is a resample of the sample dialogues (nothing new), and the domain
    documents in ``../shared/seeds`` are left out: their README says they are not data to train on.
    """
    samples = Path(str(resources.files("qa_engine").joinpath("samples")))
    packs = Path(str(resources.files("rules").joinpath("packs")))
    return [samples / "synthetic_dialogues.yaml", *sorted(packs.glob("*.cases.yaml"))]


def pretraining_texts(corpora: Iterable[Path], exclude: set[str] = frozenset()) -> tuple[list[str], dict[str, int]]:
    """Unique utterances from the corpora (or the bundled text when none), and counts per source.

    ``exclude``: texts never to train on (the labelled test split), even without their labels.
    """
    sources = list(corpora) or bundled_sources()
    texts: dict[str, None] = {}
    counts: dict[str, int] = {}
    for source in sources:
        before = len(texts)
        for dialogue in load_corpus(source):
            texts.update(dict.fromkeys(t.strip() for t in dialogue.texts() if t.strip() and t.strip() not in exclude))
        counts[str(source)] = len(texts) - before
    return list(texts), counts
