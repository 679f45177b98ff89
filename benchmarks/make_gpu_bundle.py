"""Everything ``benchmarks/gpu_check.sh`` needs on a lent GPU machine that has no network, in one folder.

The GPU machine has python with torch (CUDA), transformers, onnxruntime (CPU), numpy and pyarrow,
but no package index and none of our other dependencies, and it receives the working tree plus a
few ignored paths, **64 MiB in all**. So, run here beforehand:

- the wheels of our core dependencies that the image lacks (``pip download`` for Linux x86_64 and
  this python's minor version, or ``--python 3.12``; the check refuses to run under another one);
- a half-precision copy of the teacher's fp32 checkpoint (fp16 weights: 70 MB → 35 MB) as an
  artefact directory of its own (tokenizer, manifest with the new checksum), which
  ``TorchBackend.from_checkpoint`` loads unchanged — ``load_state_dict`` copies the fp16 values
  into the fp32 module, so only the storage is rounded; the copy is checked against the
  original here, on CPU, head by head;
- the student's fp32 checkpoint in half precision too, when it is on this machine (for the
  student-on-CUDA row);
- ``BUNDLE.json``: the python version, wheels, files and sizes, and the size account:
  working tree + bundle must stay under the limit, or this script fails.

    python benchmarks/make_gpu_bundle.py [--out benchmarks/gpu_bundle]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "benchmarks" / "gpu_bundle"
LIMIT_BYTES = 64 * 1024 * 1024  # what the device machine receives: working tree + carried paths
IMAGE_PROVIDES = {"numpy", "pyarrow"}  # in the GPU image already (with torch, transformers, onnxruntime)
NOT_ON_THE_CHECK_PATH = {"typer", "rich"}  # the CLI only; the check imports the scoring modules directly
TEACHER_DIR = "teacher"
STUDENT_FILE = "student.pt"
MANIFEST_FILE = "BUNDLE.json"
PRECISIONS = ("fp16", "bf16")
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")


def python_tag() -> str:
    """``3.11``: the minor version the wheels are for (the check compares it on the device)."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The pinned core dependencies the check imports and the image lacks."""
    pins = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    return [pin for pin in pins if re.split(r"[=<>!~\[ ]", pin, maxsplit=1)[0].lower()
            not in IMAGE_PROVIDES | NOT_ON_THE_CHECK_PATH]


def download_wheels(pins: list[str], folder: Path, python: str) -> list[str]:
    """Binary wheels of ``pins`` and their dependencies for Linux x86_64 / CPython ``python`` (no sdists)."""
    folder.mkdir(parents=True, exist_ok=True)
    tag = python.replace(".", "")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", str(folder),
               "--python-version", python, "--implementation", "cp", "--abi", f"cp{tag}", "--abi", "abi3",
               "--abi", "none", *(arg for p in PLATFORMS for arg in ("--platform", p)), *pins]
    subprocess.run(command, check=True)
    return sorted(p.name for p in folder.glob("*.whl"))


def half_state(state: dict, precision: str) -> dict:
    """Floating tensors in ``precision``; integer buffers (position ids) as they are."""
    import torch

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


def half_checkpoint(source: Path, target: Path, precision: str) -> None:
    """A checkpoint in ``models.network.save_checkpoint``'s format with half-precision weights;
    ``load_checkpoint`` reads it unchanged (the values are cast back into the fp32 module)."""
    import torch

    saved = torch.load(source, map_location="cpu", weights_only=True)
    torch.save({"config": saved["config"], "state_dict": half_state(saved["state_dict"], precision)}, target)


def half_teacher(teacher: Path, target: Path, precision: str):
    """The teacher's artefact directory with a half-precision ``model.pt``; returns the loaded artefact."""
    from models.artefact import MANIFEST, TOKENIZER_FILE, TORCH_FILE, ModelArtefact, write_manifest

    original = ModelArtefact.load(teacher)  # verifies the fp32 checkpoint against its manifest
    target.mkdir(parents=True, exist_ok=True)
    half_checkpoint(teacher / TORCH_FILE, target / TORCH_FILE, precision)
    shutil.copyfile(teacher / TOKENIZER_FILE, target / TOKENIZER_FILE)
    manifest = {k: v for k, v in original.manifest.items() if k != "files"}
    manifest["weights"] = {"precision": precision, "from": f"{TORCH_FILE} sha256:{original.manifest['files'][TORCH_FILE]}"}
    (target / MANIFEST).unlink(missing_ok=True)
    return write_manifest(target, manifest, [TOKENIZER_FILE, TORCH_FILE])


def tree_files(root: Path = ROOT) -> list[Path]:
    """What the device machine copies besides the carried paths: tracked and untracked, not ignored, files."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            check=True, capture_output=True).stdout.decode().split("\0")
    return [root / name for name in listed if name and (root / name).is_file()]


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@dataclass(frozen=True)
class SizeAccount:
    tree: int
    bundle: int
    limit: int = LIMIT_BYTES

    @property
    def total(self) -> int:
        return self.tree + self.bundle

    @property
    def fits(self) -> bool:
        return self.total <= self.limit

    def lines(self) -> list[str]:
        mib = 1024 * 1024
        return [f"working tree  {self.tree / mib:6.1f} MiB", f"bundle        {self.bundle / mib:6.1f} MiB",
                f"total         {self.total / mib:6.1f} MiB of {self.limit / mib:.0f} MiB"
                f" — {'fits' if self.fits else 'DOES NOT FIT'}"]


def compare_on_cpu(original: Path, half, inputs: list[tuple[str, str | None]]) -> dict[str, dict[str, float]]:
    """Per head: argmax agreement and largest probability difference, fp32 original vs the half copy (CPU)."""
    import numpy as np

    from models.artefact import ModelArtefact
    from models.backends import TorchBackend, softmax

    full = TorchBackend.from_checkpoint(ModelArtefact.load(original), "cpu").logits(inputs)
    rounded = TorchBackend.from_checkpoint(half, "cpu").logits(inputs)
    return {head: {"agree": float((full[head].argmax(1) == rounded[head].argmax(1)).mean()),
                   "max_dp": float(np.abs(softmax(full[head]) - softmax(rounded[head])).max())} for head in full}


def sample_inputs(limit: int) -> list[tuple[str, str | None]]:
    """Turn inputs (with the turn they answer) of the bundled sample month, as the detectors build them."""
    from qa_engine.io import load
    from qa_engine.schema import Conversation
    from models.tasks import previous_other, turn_pair

    inputs = []
    for conversation in load(ROOT / "qa_engine" / "samples" / "sample_month.jsonl"):
        if isinstance(conversation, Conversation):
            inputs += [turn_pair(t.text, previous_other(conversation, i)) for i, t in enumerate(conversation.turns)]
        if len(inputs) >= limit:
            break
    return inputs[:limit]


def main() -> None:
    from models import SHIPPED_MODEL
    from models.artefact import ModelArtefact
    from models.backends import teacher_artefact

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BUNDLE)
    teacher = teacher_artefact(ModelArtefact.load(SHIPPED_MODEL))
    parser.add_argument("--teacher", type=Path, default=teacher.directory if teacher else None,
                        help="the teacher's artefact directory (default: where the shipped student's manifest says)")
    parser.add_argument("--student-checkpoint", type=Path, default=ROOT / "models" / "runs" / "qa_zh_char" / "model.pt")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp16",
                        help="fp16 keeps 10 mantissa bits (bf16 7); the GPU computes in bf16 autocast either way")
    parser.add_argument("--python", default=python_tag(),
                        help="the GPU machine's python minor version the wheels are for (default: this one's)")
    parser.add_argument("--check-inputs", type=int, default=200, help="sample turns the half copy is checked on")
    args = parser.parse_args()

    if args.out.exists():
        shutil.rmtree(args.out)
    pins = requirements()
    wheels = download_wheels(pins, args.out / "wheels", args.python)
    (args.out / "requirements.txt").write_text("\n".join(pins) + "\n", encoding="utf-8")
    record = {"python": args.python, "machine": platform.machine(), "requirements": pins, "wheels": wheels,
              "precision": args.precision, "teacher": None, "student_checkpoint": None}
    if args.teacher and (args.teacher / "model.pt").is_file():
        half = half_teacher(args.teacher, args.out / TEACHER_DIR, args.precision)
        record["teacher"] = {"from": str(args.teacher), "provenance": half.provenance,
                             "cpu_check": compare_on_cpu(args.teacher, half, sample_inputs(args.check_inputs))}
        print(f"teacher {args.precision} copy vs fp32 on {args.check_inputs} sample turns (CPU):")
        for head, numbers in record["teacher"]["cpu_check"].items():
            print(f"  {head:10s} argmax agreement {numbers['agree']:.4f}, max |Δp| {numbers['max_dp']:.5f}")
    else:
        print(f"no teacher checkpoint at {args.teacher}: the bundle carries none (the check measures the student)")
    if args.student_checkpoint.is_file():
        half_checkpoint(args.student_checkpoint, args.out / STUDENT_FILE, args.precision)
        record["student_checkpoint"] = str(args.student_checkpoint)
    record["files"] = {str(p.relative_to(args.out)): p.stat().st_size for p in sorted(args.out.rglob("*")) if p.is_file()}
    (args.out / MANIFEST_FILE).write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    account = SizeAccount(sum(p.stat().st_size for p in tree_files()), folder_bytes(args.out))
    for name, size in record["files"].items():
        print(f"  {size / 1024 / 1024:7.2f} MiB  {name}")
    print("\n".join(account.lines()))
    if not account.fits:
        sys.exit(f"the bundle does not fit: drop the student checkpoint ({STUDENT_FILE}) or carry less")


if __name__ == "__main__":
    main()
