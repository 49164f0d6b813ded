"""Upstream's LLM modules without its ``models/llm/__init__`` (which imports ``auto``/``tokenizer``
and through them huggingface_hub and tokenizers), and random RWKV-7 checkpoints in the official
``.pth`` key layout, built locally.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import sys
import types
from pathlib import Path

import numpy as np
import torch

LLM_MODULES = ("llm", "rwkv7")


def load_upstream_llm(package: types.ModuleType) -> types.ModuleType:
    """Register an empty ``hyperscalees.models.llm`` package pointing at the checkout and import
    :data:`LLM_MODULES` into it; ``package`` is the ``hyperscalees`` package from
    ``conformance.adapters.upstream.load_upstream``. Import-time output is swallowed."""
    name = "hyperscalees.models.llm"
    directory = str(Path(package.models.__path__[0]) / "llm")
    llm = sys.modules.get(name)
    if llm is None or list(getattr(llm, "__path__", [])) != [directory]:
        llm = types.ModuleType(name)
        llm.__path__ = [directory]
        llm.__package__ = name
        sys.modules[name] = llm
        package.models.llm = llm
    with contextlib.redirect_stdout(io.StringIO()):
        for module in LLM_MODULES:
            importlib.import_module(f"{name}.{module}")
    return llm


def rwkv7_state_dict(seed, n_layer, n_head, head_size, vocab_size, lora_dims=(8, 8, 4, 8)):
    """A random RWKV-7 checkpoint as ``{key: torch.float32 tensor}`` with the official key names and
    shapes: ``(1, 1, C)`` mixing vectors and biases, ``r_k (H, S)``, ``blocks.0.ln0``, and no
    ``att.v0/v1/v2`` in layer 0. ``lora_dims``: the decay, in-context-rate, value-residual and
    gate low-rank widths. Values are scaled like a trained model's (unit-ish activations, decays
    in a sensible range), so that float32 and bfloat16 runs stay finite and informative."""
    rng = np.random.default_rng(seed)
    c = n_head * head_size
    d_decay, d_aaa, d_mv, d_gate = lora_dims

    def normal(*shape, scale=1.0, mean=0.0):
        return torch.from_numpy((mean + scale * rng.standard_normal(shape)).astype(np.float32))

    def uniform(*shape):
        return torch.from_numpy(rng.uniform(0.0, 1.0, shape).astype(np.float32))

    sd = {"emb.weight": normal(vocab_size, c, scale=0.5)}
    for i in range(n_layer):
        p = f"blocks.{i}."
        if i == 0:
            sd[p + "ln0.weight"], sd[p + "ln0.bias"] = normal(c, scale=0.1, mean=1.0), normal(c, scale=0.1)
        for norm in ("ln1", "ln2"):
            sd[p + norm + ".weight"], sd[p + norm + ".bias"] = normal(c, scale=0.1, mean=1.0), normal(c, scale=0.1)
        for mix in "rwkvag":
            sd[p + f"att.x_{mix}"] = uniform(1, 1, c)
        sd[p + "att.w0"] = normal(1, 1, c, scale=1.0, mean=-2.0)
        sd[p + "att.w1"], sd[p + "att.w2"] = normal(c, d_decay, scale=0.1), normal(d_decay, c, scale=0.1)
        sd[p + "att.a0"] = normal(1, 1, c, scale=0.5)
        sd[p + "att.a1"], sd[p + "att.a2"] = normal(c, d_aaa, scale=0.1), normal(d_aaa, c, scale=0.1)
        if i > 0:
            sd[p + "att.v0"] = normal(1, 1, c, scale=0.5, mean=1.0)
            sd[p + "att.v1"], sd[p + "att.v2"] = normal(c, d_mv, scale=0.1), normal(d_mv, c, scale=0.1)
        sd[p + "att.g1"], sd[p + "att.g2"] = normal(c, d_gate, scale=0.1), normal(d_gate, c, scale=0.1)
        sd[p + "att.k_k"] = normal(1, 1, c, scale=0.05, mean=0.85)
        sd[p + "att.k_a"] = normal(1, 1, c, scale=0.05, mean=1.0)
        sd[p + "att.r_k"] = normal(n_head, head_size, scale=0.1)
        for proj in ("receptance", "key", "value", "output"):
            sd[p + f"att.{proj}.weight"] = normal(c, c, scale=c ** -0.5)
        sd[p + "att.ln_x.weight"], sd[p + "att.ln_x.bias"] = normal(c, scale=0.1, mean=1.0), normal(c, scale=0.1)
        sd[p + "ffn.x_k"] = uniform(1, 1, c)
        sd[p + "ffn.key.weight"] = normal(4 * c, c, scale=c ** -0.5)
        sd[p + "ffn.value.weight"] = normal(c, 4 * c, scale=(4 * c) ** -0.5)
    sd["ln_out.weight"], sd["ln_out.bias"] = normal(c, scale=0.1, mean=1.0), normal(c, scale=0.1)
    sd["head.weight"] = normal(vocab_size, c, scale=c ** -0.5)
    return sd
