"""Upstream's LLM modules and random RWKV-7 / QRWKV6 checkpoints.

``conformance.adapters.upstream.load_upstream`` already imports upstream's ``models/llm`` modules
(without its ``__init__``, which needs huggingface_hub and tokenizers); the checkpoint builders
are ``eggroll_torch.models.llm.checkpoints``'.
"""
from __future__ import annotations

import types

from conformance.adapters.upstream import LLM_MODULES
from eggroll_torch.models.llm.checkpoints import qrwkv6_state_dict, rwkv7_state_dict

__all__ = ["LLM_MODULES", "load_upstream_llm", "qrwkv6_state_dict", "rwkv7_state_dict"]


def load_upstream_llm(package: types.ModuleType) -> types.ModuleType:
    """Upstream's ``hyperscalees.models.llm`` package (its :data:`LLM_MODULES` imported);
    ``package`` is the ``hyperscalees`` package from ``conformance.adapters.upstream.load_upstream``."""
    return package.models.llm
