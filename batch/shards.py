"""Shards, atomic commits and the resume manifest.

Every input file is a shard, known by the sha256 of its bytes. A shard's outputs
(``conversations/``, ``findings/``, ``quarantine/``, ``partials/``) have names fixed by that
key, each table has one explicit schema (`batch.schemas`), and they are written under a temporary name and
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

from qa_engine.errors import ErrorCode, ResultsError
from qa_engine.io import FORMATS, detect_format

MANIFEST = "_manifest.json"
KEY_HEX = 32  # a shard's key: the first 128 bits of the sha256 of its bytes


@dataclass(frozen=True)
class Shard:
    """One input file; its outputs are named by its content, so a moved, renamed or copied
    input folder resumes as the same shards."""

    path: str
    key: str
    size: int

    @classmethod
    def of(cls, path: Path) -> Shard:
        with open(path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        return cls(str(path.resolve()), digest[:KEY_HEX], path.stat().st_size)


def input_files(inputs: list[str]) -> list[Path]:
    """Input files from folders, globs or file names, in a stable order. Folders give every file
    but hidden ones (``.name``) and markers like ``_SUCCESS`` (nor any under such folders); a file of an unknown format is kept:
    its shard quarantines it (E040) instead of dropping it unseen."""
    files: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.update(p for p in path.rglob("*") if p.is_file()
                         and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts))
        elif path.is_file():
            detect_format(path)
            files.add(path)
        else:
            matched = [Path(p) for p in glob.glob(item, recursive=True)]
            if not matched:
                raise FileNotFoundError(f"no input matches {item!r} (expected a folder, a glob or {'/'.join(FORMATS)} files)")
            files.update(p for p in matched if p.is_file())
    return sorted(files)


def discover(inputs: list[str]) -> list[Shard]:
    """The shards of ``inputs`` (each file read once to hash its bytes).

    Raises:
        ValueError: two inputs hold the same bytes (their conversations would be scored twice).
    """
    shards: dict[str, Shard] = {}
    for path in input_files(inputs):
        shard = Shard.of(path)
        if shard.key in shards:
            raise ValueError(f"{shards[shard.key].path} and {shard.path} hold the same bytes; "
                             "remove one (its conversations would be scored twice)")
        shards[shard.key] = shard
    return list(shards.values())


def write_table_atomic(rows: list[dict[str, Any]], path: Path, schema: pa.Schema) -> None:
    """Write Parquet with the table's ``schema`` under a temporary name in the same folder, then
    rename it into place.

    Raises:
        ValueError: a row has a column the schema lacks (it would be dropped unseen).
    """
    extra = set().union(*rows) - set(schema.names)
    if extra:
        raise ValueError(f"{path.parent.name}: column(s) {', '.join(sorted(extra))} not in the table's schema")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), temporary)
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
        return shard.key in self.shards

    def commit(self, shard: Shard, summary: dict[str, Any]) -> None:
        self.shards[shard.key] = {"input": {"path": shard.path, "size": shard.size}, **summary}
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
