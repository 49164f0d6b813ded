"""Random RWKV-7 checkpoints in the official ``.pth`` key layout, built locally (no download).

Upstream's ``randomize_weights`` is not implemented for RWKV-7, yet tests, benchmarks and small
experiments need weights; :func:`rwkv7_state_dict` gives a state dict that the official code,
upstream's ``load_from_torch`` and ours all read, with values scaled like a trained model's.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["RWKV7_SHAPES", "rwkv7_state_dict"]

# Published RWKV-7 "World" shapes: layers, heads, head size, vocabulary and the low-rank widths
# (decay, in-context rate, value residual, gate) of the official checkpoints.
RWKV7_SHAPES = {
    "0.1B": {"n_layer": 12, "n_head": 12, "head_size": 64, "vocab_size": 65536, "lora_dims": (64, 64, 32, 128)},
    "0.4B": {"n_layer": 24, "n_head": 16, "head_size": 64, "vocab_size": 65536, "lora_dims": (64, 64, 32, 128)},
}


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
