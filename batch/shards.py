"""Shards, atomic commits and the resume manifest.

Every input file is a shard. A shard's outputs (``conversations/``, ``findings/``,
``quarantine/``) have names fixed by the shard, are written under a temporary name and
renamed into place, and only then is the shard recorded in ``_manifest.json`` (itself
replaced atomically). A rerun therefore overwrites a half-committed shard instead of
duplicating it, and ``--resume`` skips committed ones: every conversation lands exactly once.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from qa_engine.errors import ErrorCode, RecordError, ResultsError
from qa_engine.io import FORMATS, detect_format

TABLES = ("conversations", "findings", "quarantine")
MANIFEST = "_manifest.json"


@dataclass(frozen=True)
class Shard:
    """One input file and the key its outputs are named by."""

    path: str
    key: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> Shard:
        stat = path.stat()
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
        return cls(str(path.resolve()), f"{path.stem}-{digest}", stat.st_size, stat.st_mtime_ns)

    @property
    def fingerprint(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "mtime_ns": self.mtime_ns}


def discover(inputs: list[str]) -> list[Shard]:
    """Input files from folders, globs or file names, in a stable order."""
    files: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.update(p for p in path.rglob("*") if p.is_file() and _readable_format(p))
        elif path.is_file():
            detect_format(path)
            files.add(path)
        else:
            matched = [Path(p) for p in glob.glob(item, recursive=True)]
            if not matched:
                raise FileNotFoundError(f"no input matches {item!r} (expected a folder, a glob or {'/'.join(FORMATS)} files)")
            files.update(p for p in matched if p.is_file())
    return [Shard.of(p) for p in sorted(files)]


def _readable_format(path: Path) -> bool:
    try:
        detect_format(path)
    except RecordError:
        return False
    return True


def write_table_atomic(rows: list[dict[str, Any]], path: Path) -> None:
    """Write Parquet under a temporary name in the same folder, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(pa.Table.from_pylist(rows), temporary)
    os.replace(temporary, path)


def read_table(out: Path, table: str, columns: list[str] | None = None) -> pa.Table:
    """All committed shards of one output table (shards may differ in null-only columns).

    Raises:
        ResultsError: a shard file is unreadable or lacks one of ``columns``; names the file.
    """
    parts = [_read_part(p, columns) for p in sorted((out / table).glob("*.parquet"))]
    parts = [t for t in parts if t.num_rows]
    return pa.concat_tables(parts, promote_options="permissive") if parts else pa.table({})


def _read_part(path: Path, columns: list[str] | None) -> pa.Table:
    try:
        part = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ResultsError(ErrorCode.E050, source=path, detail=f"unreadable Parquet ({exc})") from None
    missing = [c for c in columns or () if c not in part.column_names]
    if missing and part.num_rows:
        raise ResultsError(ErrorCode.E050, source=path, detail=f"lacks column(s) {', '.join(missing)}")
    return part


def shard_path(out: Path, table: str, shard: Shard | str) -> Path:
    key = shard if isinstance(shard, str) else shard.key
    return out / table / f"{key}.parquet"


class Manifest:
    """Committed shards and the versions they were scored with."""

    def __init__(self, out: Path) -> None:
        self.path = out / MANIFEST
        data = json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else {}
        self.versions: dict[str, Any] | None = data.get("versions")
        self.shards: dict[str, dict[str, Any]] = data.get("shards", {})

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def committed(self, shard: Shard) -> bool:
        entry = self.shards.get(shard.key)
        return entry is not None and entry["input"] == shard.fingerprint

    def commit(self, shard: Shard, summary: dict[str, Any]) -> None:
        self.shards[shard.key] = {"input": shard.fingerprint, **summary}
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        temporary.write_text(json.dumps({"versions": self.versions, "shards": self.shards}, ensure_ascii=False,
                                        indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temporary, self.path)


def remove_stale_temporaries(out: Path) -> int:
    """Temporary files of a killed run: never committed, safe to delete."""
    stale = [p for p in out.rglob(".*.tmp-*")] if out.exists() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)
