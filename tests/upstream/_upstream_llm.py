"""Upstream's LLM modules and random RWKV-7 checkpoints in the official ``.pth`` key layout.

``conformance.adapters.upstream.load_upstream`` already imports upstream's ``models/llm`` modules
(without its ``__init__``, which needs huggingface_hub and tokenizers); the checkpoint builder is
``eggroll_torch.models.llm.checkpoints.rwkv7_state_dict``.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import types

import numpy as np
import torch

from conformance.adapters.upstream import LLM_MODULES
from eggroll_torch.models.llm.checkpoints import rwkv7_state_dict

__all__ = ["LLM_MODULES", "load_upstream_llm", "rwkv7_state_dict", "load_upstream_qrwkv6", "qrwkv6_state_dict"]


def load_upstream_llm(package: types.ModuleType) -> types.ModuleType:
    """Upstream's ``hyperscalees.models.llm`` package (its :data:`LLM_MODULES` imported);
    ``package`` is the ``hyperscalees`` package from ``conformance.adapters.upstream.load_upstream``."""
    return package.models.llm


def load_upstream_qrwkv6(package: types.ModuleType) -> types.ModuleType:
    """Upstream's ``models/llm/qrwkv6.py`` from the package :func:`load_upstream_llm` returns
    (imported into it here, output swallowed, should it not be among the modules already loaded)."""
    llm = load_upstream_llm(package)
    with contextlib.redirect_stdout(io.StringIO()):
        return importlib.import_module(f"{llm.__name__}.qrwkv6")


def qrwkv6_state_dict(seed, n_layer, n_head, head_size, vocab_size, n_kv_head=None, lora_dims=(4, 8), ffn_dim=None):
    """A random QRWKV6 checkpoint as ``{key: torch.float32 tensor}`` in the Hugging Face
    ``RWKV6Qwen2ForCausalLM.state_dict()`` layout: ``model.embed_tokens``, ``model.layers.<i>.{self_attn,
    mlp, input_layernorm, post_attention_layernorm}``, ``model.norm``, ``lm_head``, with the
    ``(1, 1, C)`` token-shift mixes and decay, ``time_maa_w1 (C, 5*D)``, ``time_maa_w2 (5, D, C)``,
    biased ``q/k/v_proj`` and ``n_kv_head`` key/value heads (default ``n_head``). Within a layer the
    attention's own tensors come before its projections, as ``nn.Module.state_dict`` orders them.
    ``lora_dims``: the token-shift and decay low-rank widths ``(D, E)``; ``ffn_dim`` defaults to
    ``3 * C``. Decays are spread so that some channels reach the ``-5`` floor of the log decay."""
    rng = np.random.default_rng(seed)
    c = n_head * head_size
    kv = (n_kv_head or n_head) * head_size
    d_mix, d_decay = lora_dims
    f = ffn_dim or 3 * c

    def normal(*shape, scale=1.0, mean=0.0):
        return torch.from_numpy((mean + scale * rng.standard_normal(shape)).astype(np.float32))

    def uniform(*shape):
        return torch.from_numpy(rng.uniform(0.0, 1.0, shape).astype(np.float32))

    sd = {"model.embed_tokens.weight": normal(vocab_size, c, scale=0.5)}
    for i in range(n_layer):
        p = f"model.layers.{i}."
        for mix in "xrkvwg":
            sd[p + f"self_attn.time_maa_{mix}"] = uniform(1, 1, c)
        sd[p + "self_attn.time_maa_w2"] = normal(5, d_mix, c, scale=0.1)
        sd[p + "self_attn.time_maa_w1"] = normal(c, 5 * d_mix, scale=0.1)
        decay = normal(1, 1, c, scale=1.5, mean=-1.5)
        decay[0, 0, ::5] = 2.5
        sd[p + "self_attn.time_decay"] = decay
        sd[p + "self_attn.time_decay_w1"] = normal(c, d_decay, scale=0.1)
        sd[p + "self_attn.time_decay_w2"] = normal(d_decay, c, scale=0.1)
        for proj, out_dim in (("q_proj", c), ("k_proj", kv), ("v_proj", kv)):
            sd[p + f"self_attn.{proj}.weight"] = normal(out_dim, c, scale=c ** -0.5)
            sd[p + f"self_attn.{proj}.bias"] = normal(out_dim, scale=0.1)
        sd[p + "self_attn.o_proj.weight"] = normal(c, c, scale=c ** -0.5)
        sd[p + "self_attn.gate.weight"] = normal(c, c, scale=c ** -0.5)
        sd[p + "mlp.gate_proj.weight"] = normal(f, c, scale=c ** -0.5)
        sd[p + "mlp.up_proj.weight"] = normal(f, c, scale=c ** -0.5)
        sd[p + "mlp.down_proj.weight"] = normal(c, f, scale=f ** -0.5)
        sd[p + "input_layernorm.weight"] = normal(c, scale=0.1, mean=1.0)
        sd[p + "post_attention_layernorm.weight"] = normal(c, scale=0.1, mean=1.0)
    sd["model.norm.weight"] = normal(c, scale=0.1, mean=1.0)
    sd["lm_head.weight"] = normal(vocab_size, c, scale=c ** -0.5)
    return sd
