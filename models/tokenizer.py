"""Character-level Chinese tokenizer (a `tokenizers` WordLevel model over single characters).

Why characters: Chinese customer-service text has no spaces, evasions work per character
(全網, 醉好), and a char vocabulary of ~7k covers nearly all text with a tiny embedding table.
The vocabulary is the GB2312 hanzi (6,763: the standard's own common-character set,
generated from Python's codec, no download) plus printable ASCII, CJK punctuation, the
characters of the training corpus, and the special / marker tokens the heads use.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from qa_engine.text import fold

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# role markers for serialised conversations, hit markers for the contextual-violation head
ROLE_TOKENS = {"customer": "[C]", "agent": "[A]", "bot": "[B]", "system": "[S]"}
MARKERS = ["[H]", "[/H]"]

def category_tokens() -> list[str]:
    """One marker per category the bundled rule packs declare (the packs own the category list)."""
    from rules.pack import load_rulebook

    return [f"[{category}]" for category in load_rulebook().categories]


CATEGORY_TOKENS = category_tokens()
EXTRA_TOKENS = [*ROLE_TOKENS.values(), *MARKERS, *CATEGORY_TOKENS]
MAX_LENGTH = 256
_TOKENIZER_ARGS = dict(unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                       mask_token="[MASK]", additional_special_tokens=EXTRA_TOKENS, model_max_length=MAX_LENGTH,
                       model_input_names=["input_ids", "token_type_ids", "attention_mask"])
PUNCTUATION = "，。！？；：、“”‘’（）《》【】…—～·「」『』〈〉￥％＋－＝"


def gb2312_hanzi() -> list[str]:
    """The 6,763 hanzi of GB 2312 (levels 1 and 2), in code order."""
    chars = []
    for high in range(0xB0, 0xF8):
        for low in range(0xA1, 0xFF):
            try:
                chars.append(bytes([high, low]).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return chars


def build_vocab(texts: Iterable[str], min_count: int = 1) -> list[str]:
    """Special tokens, ASCII, punctuation, GB2312 hanzi, then corpus characters not yet in."""
    base = [*SPECIAL, *EXTRA_TOKENS, *(chr(c) for c in range(33, 127) if not chr(c).isupper()),
            *PUNCTUATION, *gb2312_hanzi()]
    seen = set(base)
    counts = Counter(ch for text in texts for ch in fold(text) if not ch.isspace())
    extra = sorted(ch for ch, n in counts.items() if n >= min_count and ch not in seen)
    return list(dict.fromkeys(base + extra))


def build_tokenizer(vocab: list[str]):
    """A `PreTrainedTokenizerFast`: NFKC + lower case, whitespace dropped, one token a character."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    ids = {token: i for i, token in enumerate(vocab)}
    core = Tokenizer(WordLevel(ids, unk_token="[UNK]"))
    core.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                  pre_tokenizers.Split(Regex("."), behavior="isolated")])
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=core, **_TOKENIZER_ARGS)


def load_tokenizer(directory: Path, special_tokens: dict | None = None):
    """The tokenizer saved as ``tokenizer.json`` in ``directory``; ``special_tokens`` from the artefact's
    manifest when it is not the character tokenizer (the e5 teacher's XLM-R pieces)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(directory / "tokenizer.json"), **(special_tokens or _TOKENIZER_ARGS))


def save_tokenizer(tokenizer, directory: Path) -> Path:
    path = directory / "tokenizer.json"
    tokenizer.backend_tokenizer.save(str(path))
    return path
