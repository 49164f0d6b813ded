"""Language models (upstream's ``hyperscalees.models.llm``): the :class:`~.llm.LLM` base and RWKV-7.

Only ``llm`` and ``rwkv7`` are provided; they import nothing beyond torch, so this package needs no
tokenizer or Hugging Face libraries.
"""
from . import llm, rwkv7

__all__ = ["llm", "rwkv7"]
