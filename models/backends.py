"""Inference backends behind one interface: onnxruntime (int8, CPU or CUDA) and torch (CPU or CUDA).

A backend takes (text, pair) inputs and returns every head's logits. Inputs are tokenised
once, ordered by length and cut into batches padded only to their own longest input
(dynamic padding + length bucketing), so a batch of short turns never pays for one long
conversation. ``select_backend`` picks the fastest one available; config may name one.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from models.artefact import ONNX_FILE, TORCH_FILE, ModelArtefact, ModelUnavailable
from models.tasks import HEADS
from models.tokenizer import MAX_LENGTH, load_tokenizer

BACKENDS = ("auto", "onnx", "torch")
MEMO_SIZE = 4  # recent logits calls kept (a conversation's turns, its resolution input, its hits)
BATCH_SIZE = 8  # inputs sorted by length, 8 at a time: little padding (a conversation's turns run 2–100 characters)
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def encode(tokenizer, inputs: Sequence[tuple[str, str | None]]) -> tuple[list[list[int]], list[list[int]]]:
    """Token and segment ids per (text, pair); an input without a pair is encoded as a single text
    whatever else is in the batch, so batch composition never changes an input's encoding."""
    ids: list[list[int]] = [[] for _ in inputs]
    types: list[list[int]] = [[] for _ in inputs]
    for paired in (False, True):
        chosen = [i for i, (_, pair) in enumerate(inputs) if bool(pair) is paired]
        if not chosen:
            continue
        encoded = tokenizer([inputs[i][0] for i in chosen], [inputs[i][1] for i in chosen] if paired else None,
                            truncation="longest_first" if paired else True, max_length=MAX_LENGTH,
                            return_token_type_ids=True)
        for row, i in enumerate(chosen):
            ids[i], types[i] = encoded["input_ids"][row], encoded["token_type_ids"][row]
    return ids, types


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def pad(ids: list[list[int]], types: list[list[int]]) -> dict[str, np.ndarray]:
    """One batch padded to its own longest input (dynamic padding)."""
    width = max(map(len, ids))
    feeds = {name: np.zeros((len(ids), width), np.int64) for name in INPUT_NAMES}
    for row, (tokens, segments) in enumerate(zip(ids, types)):
        feeds["input_ids"][row, :len(tokens)] = tokens
        feeds["attention_mask"][row, :len(tokens)] = 1
        feeds["token_type_ids"][row, :len(tokens)] = segments
    return feeds


class Backend(ABC):
    """Runs the encoder and heads on batches; subclasses only implement ``_run``."""

    name: str = ""
    # True when an input's logits never depend on what it is batched with (then detectors may batch
    # across conversations and a conversation still scores the same alone): statically quantised or
    # fp32 graphs on onnxruntime's CPU kernels. Dynamic int8 scales each batch by its own range.
    row_independent: bool = False

    def __init__(self, tokenizer, device: str, batch_size: int = BATCH_SIZE, artefact: ModelArtefact | None = None) -> None:
        self.artefact = artefact  # manifest (thresholds, provenance); None for an in-training torch module
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size
        self._memo: OrderedDict[tuple, dict[str, np.ndarray]] = OrderedDict()
        self._memo_lock = threading.Lock()  # the live service may score from several threads

    @abstractmethod
    def _run(self, feeds: dict[str, np.ndarray]) -> Sequence[np.ndarray]:
        """One padded batch → logits per head, in HEADS order."""

    def logits(self, inputs: Sequence[tuple[str, str | None]]) -> dict[str, np.ndarray]:
        """Every head's logits for each (text, pair), in input order.

        The last few calls are memoised: detectors judging the same turns with different heads
        (empathy, emotion) share one forward pass."""
        if not inputs:
            return {head: np.zeros((0, len(labels)), np.float32) for head, labels in HEADS.items()}
        key = tuple(inputs)
        with self._memo_lock:
            memoised = self._memo.get(key)
        if memoised is not None:
            return memoised
        ids, types = encode(self.tokenizer, inputs)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = {head: np.zeros((len(ids), len(labels)), np.float32) for head, labels in HEADS.items()}
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            for head, logits in zip(HEADS, self._run(pad([ids[i] for i in batch], [types[i] for i in batch]))):
                out[head][batch] = logits
        with self._memo_lock:
            self._memo[key] = out
            while len(self._memo) > MEMO_SIZE:
                self._memo.popitem(last=False)
        return out

    def probabilities(self, head: str, inputs: Sequence[tuple[str, str | None]]) -> np.ndarray:
        return softmax(self.logits(inputs)[head])


class OnnxBackend(Backend):
    """The shipped int8 graph on onnxruntime; CUDAExecutionProvider when onnxruntime-gpu sees a GPU."""

    name = "onnx"

    def __init__(self, artefact: ModelArtefact, device: str = "auto", batch_size: int = BATCH_SIZE,
                 threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelUnavailable("onnxruntime is not installed: pip install 'qa-engine[train]'") from exc
        cuda = "CUDAExecutionProvider" in ort.get_available_providers() and device in ("auto", "cuda")
        if device == "cuda" and not cuda:
            raise ModelUnavailable("device 'cuda' asked for, but onnxruntime has no CUDAExecutionProvider "
                                   "(install the gpu extra: onnxruntime-gpu)")
        super().__init__(load_tokenizer(artefact.directory, artefact.manifest.get("tokenizer")), "cuda" if cuda else "cpu", batch_size, artefact)
        options = ort.SessionOptions()
        # one thread without spin-waiting: the small student's ops are too short to share between threads
        # (measured 1.8x faster than two on two cores), and a spinning pool stalls whatever else runs there
        options.intra_op_num_threads = threads or 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(artefact.directory / ONNX_FILE), options, providers=providers)
        self.row_independent = not cuda and artefact.manifest.get("quantisation", "").startswith("static")

    def _run(self, feeds: dict[str, np.ndarray]) -> Sequence[np.ndarray]:
        return self.session.run(None, feeds)


class TorchBackend(Backend):
    """A torch module (fp32; CUDA when present): training-time evaluation, GPUs and parity checks."""

    name = "torch"

    def __init__(self, model, tokenizer, device: str = "cpu", batch_size: int = BATCH_SIZE,
                 artefact: ModelArtefact | None = None) -> None:
        import torch

        super().__init__(tokenizer, device, batch_size, artefact)
        self.model = model.to(device).eval()
        self._torch = torch

    @classmethod
    def from_checkpoint(cls, artefact: ModelArtefact, device: str = "auto", batch_size: int = BATCH_SIZE,
                        checkpoint: Path | None = None) -> TorchBackend:
        """The fp32 checkpoint of a training run (shipped models carry only the int8 ONNX)."""
        try:
            import torch
        except ImportError as exc:
            raise ModelUnavailable("torch is not installed: pip install 'qa-engine[train]'") from exc
        checkpoint = Path(checkpoint or artefact.directory / TORCH_FILE)
        if not checkpoint.is_file():
            raise ModelUnavailable(f"no fp32 checkpoint at {checkpoint} (shipped models carry only the int8 ONNX; "
                                   "train one with `qa-engine train`)")
        from models.network import load_checkpoint

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return cls(load_checkpoint(checkpoint), load_tokenizer(artefact.directory, artefact.manifest.get("tokenizer")), device, batch_size, artefact)

    def _run(self, feeds: dict[str, np.ndarray]) -> Sequence[np.ndarray]:
        torch = self._torch
        cuda = str(self.device).startswith("cuda")
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            tensors = {name: torch.from_numpy(array).to(self.device) for name, array in feeds.items()}
            return [logits.float().cpu().numpy() for logits in self.model(**tensors)]


def _nvidia_driver_present() -> bool:
    """A cheap look for an NVIDIA driver, so CPU machines never import torch just to ask about CUDA."""
    return Path("/proc/driver/nvidia/version").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


def _cuda_torch_usable(artefact: ModelArtefact, checkpoint: Path | None) -> bool:
    if not Path(checkpoint or artefact.directory / TORCH_FILE).is_file() or not _nvidia_driver_present():
        return False  # no checkpoint or no GPU driver: do not pay for importing torch
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def select_backend(artefact: ModelArtefact, backend: str = "auto", device: str = "auto", batch_size: int = BATCH_SIZE,
                   checkpoint: Path | None = None) -> Backend:
    """``auto``: onnxruntime on CUDA, else torch on CUDA (with a checkpoint), else onnxruntime CPU, else torch CPU.

    Raises:
        ModelUnavailable: the backend asked for (or every one, for ``auto``) cannot run here.
    """
    if backend not in BACKENDS:
        raise ModelUnavailable(f"unknown backend {backend!r}; one of {', '.join(BACKENDS)} "
                               "(vLLM serves the optional LLM judge: models.judge)")
    if backend == "onnx":
        return OnnxBackend(artefact, device, batch_size)
    if backend == "torch":
        return TorchBackend.from_checkpoint(artefact, device, batch_size, checkpoint)
    reasons = []
    if device in ("auto", "cuda"):
        teacher = teacher_artefact(artefact)
        if teacher is not None and _cuda_torch_usable(teacher, None):
            return TorchBackend.from_checkpoint(teacher, "cuda", batch_size)
        try:
            return OnnxBackend(artefact, "cuda", batch_size)
        except ModelUnavailable as exc:
            reasons.append(str(exc))
        if _cuda_torch_usable(artefact, checkpoint):
            return TorchBackend.from_checkpoint(artefact, "cuda", batch_size, checkpoint)
    for make in (OnnxBackend, TorchBackend.from_checkpoint):
        try:
            return make(artefact, "cpu", batch_size, **({"checkpoint": checkpoint} if make is not OnnxBackend else {}))
        except ModelUnavailable as exc:
            reasons.append(str(exc))
    raise ModelUnavailable("; ".join(dict.fromkeys(reasons)))


def teacher_artefact(student: ModelArtefact) -> ModelArtefact | None:
    """The teacher a student was distilled from, when its (unshipped) training output is on this machine."""
    from models import PACKAGE_DIR

    directory = (student.manifest.get("teacher") or {}).get("directory")
    if not directory:
        return None
    path = Path(directory) if Path(directory).is_absolute() else PACKAGE_DIR.parent / directory
    try:
        return ModelArtefact.load(path)
    except (ModelUnavailable, OSError, ValueError, KeyError):
        return None


@lru_cache(maxsize=8)
def load_backend(directory: str, backend: str = "auto", device: str = "auto") -> Backend:
    """One backend per artefact directory and choice, shared by every detector in the process."""
    return select_backend(ModelArtefact.load(Path(directory)), backend, device)
