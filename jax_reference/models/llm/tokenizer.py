"""Tokenizers of the language models (upstream's ``hyperscalees.models.llm.tokenizer``).

Tokenizers hold no arrays, so there is one implementation, ``eggroll_torch.models.llm.tokenizer``,
and these are its very classes: the JAX and PyTorch models encode and decode identically by
construction. Importing it imports torch (a required dependency of this distribution, which
``load_from_torch`` needs anyway); the tokenizer packages themselves (the ``llm`` extra) are
imported only when a tokenizer is built. See that module for where each vocabulary comes from.
"""
from eggroll_torch.models.llm.tokenizer import (
    RWKV_TOKENIZER,
    BaseTokenizer,
    GptTokenizer,
    LegacyWorldTokenizer,
    QwenTokenizer,
    WorldTokenizer,
    gpt_neox_tokenizer_path,
    world_vocab_path,
)

__all__ = [
    "BaseTokenizer",
    "GptTokenizer",
    "LegacyWorldTokenizer",
    "QwenTokenizer",
    "RWKV_TOKENIZER",
    "WorldTokenizer",
    "gpt_neox_tokenizer_path",
    "world_vocab_path",
]
