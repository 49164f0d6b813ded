"""Random RWKV-7 and QRWKV6 checkpoints in their published layouts, built locally (no download).

Upstream's ``randomize_weights`` is not implemented for its language models, yet tests,
benchmarks and small experiments need weights: :func:`rwkv7_state_dict` gives an official RWKV-7
``.pth`` layout and :func:`qrwkv6_state_dict` QRWKV6's Hugging Face layout, which upstream's
``load_from_torch`` and ours read, with values scaled like a trained model's.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["RWKV7_SHAPES", "qrwkv6_state_dict", "rwkv7_state_dict"]

# Published RWKV-7 "World" shapes: layers, heads, head size, vocabulary and the low-rank widths
# (decay, in-context rate, value residual, gate) of the official checkpoints.
RWKV7_SHAPES = {
    "0.1B": {"n_layer": 12, "n_head": 12, "head_size": 64, "vocab_size": 65536, "lora_dims": (64, 64, 32, 128)},
    "0.4B": {"n_layer": 24, "n_head": 16, "head_size": 64, "vocab_size": 65536, "lora_dims": (64, 64, 32, 128)},
}


def _samplers(seed: int):
    """``(normal, uniform)``: float32 tensors of a given shape from one ``numpy`` generator seeded
    ``seed``, drawn in call order (``normal(*shape, scale, mean)``, ``uniform(*shape)`` on [0, 1))."""
    rng = np.random.default_rng(seed)

    def normal(*shape, scale=1.0, mean=0.0):
        return torch.from_numpy((mean + scale * rng.standard_normal(shape)).astype(np.float32))

    def uniform(*shape):
        return torch.from_numpy(rng.uniform(0.0, 1.0, shape).astype(np.float32))

    return normal, uniform


def rwkv7_state_dict(seed, n_layer, n_head, head_size, vocab_size, lora_dims=(8, 8, 4, 8)):
    """A random RWKV-7 checkpoint as ``{key: torch.float32 tensor}`` with the official key names and
    shapes: ``(1, 1, C)`` mixing vectors and biases, ``r_k (H, S)``, ``blocks.0.ln0``, and no
    ``att.v0/v1/v2`` in layer 0 (``C = n_head * head_size``).

    Args:
        seed (int): seed of the ``numpy`` generator that draws every value.
        n_layer, n_head, head_size, vocab_size (int): the model's shape (see :data:`RWKV7_SHAPES`
            for published ones, e.g. ``rwkv7_state_dict(0, **RWKV7_SHAPES["0.1B"])``).
        lora_dims (tuple[int, int, int, int]): the decay, in-context-rate, value-residual and
            gate low-rank widths.

    Values are scaled like a trained model's (unit-ish activations, decays in a sensible range),
    so that float32 and bfloat16 runs stay finite and informative.
    """
    normal, uniform = _samplers(seed)
    c = n_head * head_size
    d_decay, d_aaa, d_mv, d_gate = lora_dims

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


def qrwkv6_state_dict(seed, n_layer, n_head, head_size, vocab_size, n_kv_head=None, lora_dims=(4, 8), ffn_dim=None):
    """A random QRWKV6 checkpoint as ``{key: torch.float32 tensor}`` in the Hugging Face
    ``RWKV6Qwen2ForCausalLM.state_dict()`` layout: ``model.embed_tokens``, ``model.layers.<i>.{self_attn,
    mlp, input_layernorm, post_attention_layernorm}``, ``model.norm``, ``lm_head``, with the
    ``(1, 1, C)`` token-shift mixes and decay, ``time_maa_w1 (C, 5*D)``, ``time_maa_w2 (5, D, C)``,
    biased ``q/k/v_proj`` and ``n_kv_head`` key/value heads (default ``n_head``). Within a layer the
    attention's own tensors come before its projections, as ``nn.Module.state_dict`` orders them.
    ``lora_dims``: the token-shift and decay low-rank widths ``(D, E)``; ``ffn_dim`` defaults to
    ``3 * C``. Decays are spread so that some channels reach the ``-5`` floor of the log decay."""
    normal, uniform = _samplers(seed)
    c = n_head * head_size
    kv = (n_kv_head or n_head) * head_size
    d_mix, d_decay = lora_dims
    f = ffn_dim or 3 * c

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
