"""Language models (upstream's ``hyperscalees.models.llm``): the :class:`~.llm.LLM` base, RWKV-7,
QRWKV6, and the ``auto`` model table and ``tokenizer`` modules.

Importing the package loads ``llm``, ``rwkv7`` and ``qrwkv6``, which need nothing beyond jax (torch
only inside ``transform_torch_model``); ``auto`` and ``tokenizer`` (torch, and the ``llm`` extra's
tokenizer packages when a tokenizer is built) load only when imported by name.
"""
from . import llm, qrwkv6, rwkv7

__all__ = ["auto", "llm", "qrwkv6", "rwkv7", "tokenizer"]
