"""A model artefact directory: manifest (version, heads, thresholds) and checksummed files.

Every result a model detector contributes to records ``<name>@<version> sha256:<checksum>``
through ``data_versions``, and the checksum is recomputed from the files (and the manifest's heads
and thresholds) when they are loaded, so a report always names the exact bytes and decision
thresholds that scored it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
TOKENIZER_FILE = "tokenizer.json"
ONNX_FILE = "model.int8.onnx"
TORCH_FILE = "model.pt"  # fp32 checkpoint: training runs only, not shipped


class ModelUnavailable(RuntimeError):
    """The model cannot be used here (artefacts or a runtime missing); callers fall back to the baselines."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


DECISIONS = "manifest:heads+thresholds"


def decisions_digest(manifest: dict[str, Any]) -> str:
    """The manifest entries that decide labels besides the weights (heads and thresholds): part of the
    checksum, so retuning a threshold changes what results record, as a changed file does."""
    return hashlib.sha256(json.dumps({k: manifest.get(k) for k in ("heads", "thresholds")},
                                     sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def combined_checksum(files: dict[str, str]) -> str:
    return hashlib.sha256("".join(f"{name}:{digest}\n" for name, digest in sorted(files.items())).encode()).hexdigest()


@dataclass(frozen=True)
class ModelArtefact:
    directory: Path
    manifest: dict[str, Any]
    checksum: str

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def provenance(self) -> str:
        """What results record: ``0.1.0 sha256:<first 16 hex>``."""
        return f"{self.version} sha256:{self.checksum[:16]}"

    def threshold(self, head: str) -> float:
        return float(self.manifest.get("thresholds", {}).get(head, 0.5))

    def labels(self, head: str) -> tuple[str, ...]:
        return tuple(self.manifest["heads"][head])

    @classmethod
    def load(cls, directory: Path) -> ModelArtefact:
        """Read and verify an artefact directory.

        Raises:
            ModelUnavailable: no manifest, a listed file missing, or a file whose bytes changed.
        """
        path = Path(directory) / MANIFEST
        if not path.is_file():
            raise ModelUnavailable(f"no model installed at {directory} (no {MANIFEST})")
        manifest = json.loads(path.read_text(encoding="utf-8"))
        found = {}
        for name, expected in manifest["files"].items():
            file = Path(directory) / name
            if not file.is_file():
                raise ModelUnavailable(f"model file missing: {file}")
            found[name] = sha256(file)
            if found[name] != expected:
                raise ModelUnavailable(f"model file {file} does not match its manifest checksum")
        return cls(Path(directory), manifest, combined_checksum(found | {DECISIONS: decisions_digest(manifest)}))


def write_manifest(directory: Path, manifest: dict[str, Any], files: list[str]) -> ModelArtefact:
    """Record the files' checksums in ``manifest.json`` and return the loaded artefact."""
    manifest = {**manifest, "files": {name: sha256(directory / name) for name in files}}
    (directory / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return ModelArtefact.load(directory)
