"""The encoder and its heads (torch; imported only where torch is installed).

One small BERT encoder (transformers' ``BertModel``) shared by five linear heads on the
[CLS] state: one ONNX graph, one int8 file of ~5 MB, one forward pass serving any head.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import BertConfig, BertModel

from models.tasks import HEADS


def encoder_config(vocab_size: int, hidden: int = 256, layers: int = 4, heads: int = 4,
                   max_length: int = 256) -> BertConfig:
    """~5M parameters at the defaults (4 layers × 256 hidden, 7k characters)."""
    return BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                      intermediate_size=hidden * 4, max_position_embeddings=max_length, type_vocab_size=2,
                      pad_token_id=0, attn_implementation="eager")


class MultiHeadClassifier(nn.Module):
    """The encoder plus one linear layer per head; ``forward`` returns every head's logits, in HEADS order."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.heads = nn.ModuleDict({name: nn.Linear(config.hidden_size, len(labels)) for name, labels in HEADS.items()})

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cls = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                        token_type_ids=token_type_ids).last_hidden_state[:, 0]
        cls = self.dropout(cls)
        return tuple(self.heads[name](cls) for name in HEADS)


def save_checkpoint(model: MultiHeadClassifier, path) -> None:
    """fp32 weights plus the few config numbers needed to rebuild the module (training runs only)."""
    c = model.config
    config = {"vocab_size": c.vocab_size, "hidden": c.hidden_size, "layers": c.num_hidden_layers,
              "heads": c.num_attention_heads, "max_length": c.max_position_embeddings}
    torch.save({"config": config, "state_dict": model.state_dict()}, path)


def load_checkpoint(path) -> MultiHeadClassifier:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = MultiHeadClassifier(encoder_config(**saved["config"]))
    model.load_state_dict(saved["state_dict"])
    return model
