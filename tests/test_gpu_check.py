"""The offline GPU check, run on CPU: the bundle (wheels list, half-precision checkpoints, size account)
and ``benchmarks/gpu_check.py`` end to end — with a small random model where the teacher is absent."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from conftest import ROOT, SAMPLES  # noqa: E402
from models import SHIPPED_MODEL  # noqa: E402
from models.artefact import TOKENIZER_FILE, TORCH_FILE, ModelArtefact, write_manifest  # noqa: E402
from models.backends import softmax, teacher_artefact  # noqa: E402
from models.network import MultiHeadClassifier, encoder_config, load_checkpoint, save_checkpoint  # noqa: E402
from models.tasks import HEADS  # noqa: E402
from qa_engine.io import load  # noqa: E402
from qa_engine.schema import Conversation  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402
import make_gpu_bundle  # noqa: E402


def small_model(vocab: int) -> MultiHeadClassifier:
    torch.manual_seed(0)
    return MultiHeadClassifier(encoder_config(vocab, hidden=32, layers=1, heads=2)).eval()


@pytest.fixture(scope="module")
def small_teacher(tmp_path_factory) -> Path:
    """An artefact directory shaped like the teacher's (tokenizer, fp32 checkpoint, manifest), with a small
    random encoder over the student's character vocabulary: what CI has instead of the unshipped teacher."""
    directory = tmp_path_factory.mktemp("teacher")
    student = ModelArtefact.load(SHIPPED_MODEL)
    shutil.copyfile(SHIPPED_MODEL / TOKENIZER_FILE, directory / TOKENIZER_FILE)
    vocabulary = len(json.loads((SHIPPED_MODEL / TOKENIZER_FILE).read_text(encoding="utf-8"))["model"]["vocab"])
    save_checkpoint(small_model(vocabulary), directory / TORCH_FILE)
    manifest = {k: v for k, v in student.manifest.items() if k not in ("files", "teacher")}
    write_manifest(directory, {**manifest, "name": "small_teacher"}, [TOKENIZER_FILE, TORCH_FILE])
    return directory


def test_the_bundle_wheels_are_the_pinned_core_the_image_lacks():
    pins = make_gpu_bundle.requirements()
    names = {pin.split("==")[0] for pin in pins}
    assert {"pydantic", "pyyaml", "pyahocorasick", "opencc", "pypinyin"} <= names
    assert not names & {"numpy", "pyarrow", "typer", "rich"}  # the image has the first two; the check needs no CLI
    assert all("==" in pin for pin in pins)


def test_a_half_checkpoint_is_half_the_size_and_loads_with_load_checkpoint(tmp_path):
    model = small_model(300)
    save_checkpoint(model, tmp_path / "fp32.pt")
    for precision, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        make_gpu_bundle.half_checkpoint(tmp_path / "fp32.pt", tmp_path / f"{precision}.pt", precision)
        assert (tmp_path / f"{precision}.pt").stat().st_size < 0.6 * (tmp_path / "fp32.pt").stat().st_size
        loaded = load_checkpoint(tmp_path / f"{precision}.pt").eval()
        for name, value in model.state_dict().items():
            expected = value.to(dtype).to(value.dtype) if value.is_floating_point() else value
            assert torch.equal(loaded.state_dict()[name], expected), name
    ids = torch.randint(5, 300, (2, 9))
    inputs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids))
    with torch.inference_mode():
        assert all(torch.allclose(a, b, atol=1e-2) for a, b in zip(model(**inputs), loaded(**inputs)))


def test_the_half_teacher_is_an_artefact_the_backend_loads(tmp_path, small_teacher):
    half = make_gpu_bundle.half_teacher(small_teacher, tmp_path / "teacher", "fp16")
    assert ModelArtefact.load(tmp_path / "teacher").checksum == half.checksum  # manifest matches the new bytes
    assert half.manifest["weights"]["precision"] == "fp16"
    assert half.threshold("empathy") == ModelArtefact.load(small_teacher).threshold("empathy")
    check = make_gpu_bundle.compare_on_cpu(small_teacher, half, make_gpu_bundle.sample_inputs(40))
    assert set(check) == set(HEADS)
    assert all(numbers["max_dp"] < 0.01 for numbers in check.values())


def test_the_size_account_counts_what_the_device_receives(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("bundle/\n", encoding="utf-8")
    (tmp_path / "tracked.txt").write_text("x" * 100, encoding="utf-8")
    subprocess.run(["git", "-C", str(tmp_path), "add", "tracked.txt", ".gitignore"], check=True)
    (tmp_path / "untracked.txt").write_text("y" * 10, encoding="utf-8")
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "wheel.whl").write_bytes(b"z" * 1000)
    listed = make_gpu_bundle.tree_files(tmp_path)
    assert sorted(p.name for p in listed) == [".gitignore", "tracked.txt", "untracked.txt"]
    tree = sum(p.stat().st_size for p in listed)
    assert make_gpu_bundle.SizeAccount(tree, make_gpu_bundle.folder_bytes(tmp_path / "bundle"), limit=1200).fits
    over = make_gpu_bundle.SizeAccount(tree, 1000, limit=1100)
    assert not over.fits and "DOES NOT FIT" in over.lines()[-1]


class Recorder:
    """A backend stand-in that records what the model detectors ask it (all-zero logits); a call repeated
    is answered from memory, as the backends' memo answers it (the turn pass empathy, emotion and the
    turn head share)."""

    def __init__(self) -> None:
        self.artefact = ModelArtefact.load(SHIPPED_MODEL)
        self.asked: list[tuple[str, str | None]] = []
        self.seen: set[tuple] = set()

    def logits(self, inputs):
        if tuple(inputs) not in self.seen:
            self.seen.add(tuple(inputs))
            self.asked += inputs
        return {head: np.zeros((len(inputs), len(labels)), np.float32) for head, labels in HEADS.items()}

    def probabilities(self, head, inputs):
        return softmax(self.logits(inputs)[head])


def test_the_check_feeds_the_model_what_the_detectors_feed_it(rule_detector):
    from models.detectors import EmpathyModelDetector, HybridViolationDetector, ResolutionModelDetector

    conversations = [c for c in load(SAMPLES / "sample_month.jsonl") if isinstance(c, Conversation)][:40]
    for conversation in conversations:
        recorder = Recorder()
        for detector in (EmpathyModelDetector(recorder), ResolutionModelDetector(recorder),
                         HybridViolationDetector(recorder, rule_detector)):
            detector.detect(conversation)
        assert [item.input for item in gpu_check.conversation_items(conversation, rule_detector)] == recorder.asked
    assert any(item.kind == "hit" for c in conversations for item in gpu_check.conversation_items(c, rule_detector))


def run_check(tmp_path: Path, teacher: Path, student_checkpoint: Path, limit: int) -> dict:
    out = tmp_path / "check.json"
    result = gpu_check.main(["--device", "cpu", "--corpora", str(tmp_path / "no-corpora"), "--limit", str(limit),
                             "--teacher", str(teacher), "--student-checkpoint", str(student_checkpoint),
                             "--device-seconds", "0.5", "--cpu-seconds", "0.5", "--cpu-sample", "3",
                             "--json", str(out)])
    assert json.loads(out.read_text(encoding="utf-8")) == json.loads(json.dumps(result))
    assert result["info"]["conversations"] == limit and "sample month" in result["info"]["source"]
    return result


def test_the_check_runs_end_to_end_on_cpu(tmp_path, small_teacher):
    result = run_check(tmp_path, small_teacher, small_teacher / TORCH_FILE, limit=4)
    models = [(row["model"], row["runtime"]) for row in result["rows"]]
    assert models == [("teacher small_teacher", "torch"), ("student qa_zh_char", "onnxruntime (1 thread)"),
                      ("student qa_zh_char", "torch"), ("teacher small_teacher", "torch")]
    assert all(row["conversations"] >= 3 and row["utterances"] > 0 and row["utt_s"] > 0 for row in result["rows"])
    same = result["agreement"]["teacher cpu vs teacher CPU fp32"]  # one model, one device: identical labels
    assert all(numbers["agree"] == 1.0 for numbers in same.values() if numbers["n"])
    assert same["resolution"]["n"] == 3 and same["empathy"]["n"] > 0
    assert "| teacher small_teacher | torch | cpu | fp32 weights, fp32 compute |" in result["markdown"]


def test_the_check_with_the_real_teacher(tmp_path):
    teacher = teacher_artefact(ModelArtefact.load(SHIPPED_MODEL))
    if teacher is None:
        pytest.skip("the teacher's checkpoint (models/runs, not shipped) is not on this machine")
    result = run_check(tmp_path, teacher.directory, tmp_path / "no-student.pt", limit=3)
    assert [row["precision"] for row in result["rows"]][::2] == ["fp32 weights, fp32 compute"] * 2
    assert set(result["agreement"]) == {"teacher cpu vs student CPU int8", "teacher cpu vs teacher CPU fp32"}
    assert all(n["agree"] == 1.0 for n in result["agreement"]["teacher cpu vs teacher CPU fp32"].values() if n["n"])
