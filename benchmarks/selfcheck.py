"""Checks run on the benchmark's own device before timing anything.

The fast path must stay bit-identical to the parity path: here its noise kernel (Triton on
CUDA, C on the CPU) is compared bit for bit with ``eggroll_torch.random.normal`` on the same
device, and its fused forward and update with the torch-ops path, so a results file also
records that the code it timed computes the right thing on that hardware.
"""
from __future__ import annotations

import torch

from conformance.tolerances import compare
from eggroll_torch import random as es_random
from eggroll_torch.fast import LowRankStack, draw_pair_normals, layer_keys, pair_keys, standardize, use_kernel

_WORD = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float16: torch.int16}


def noise_check(device: str, dtype: torch.dtype) -> dict:
    """The bulk draw against ``eggroll_torch.random.normal`` for 3 layers x 64 pairs x (136, 4)."""
    keys = es_random.split(es_random.key(7, device=device), 3)
    out = torch.empty(3, 64, 4, 136, dtype=dtype, device=device).transpose(2, 3)
    draw_pair_normals(keys, 5, out, noise_reuse=1)
    expected = es_random.normal(pair_keys(keys, 5, 64, 1), (136, 4), dtype)
    same = torch.equal(out.contiguous().view(_WORD[dtype]), expected.view(_WORD[dtype]))
    return {"kernel": use_kernel(device, dtype) or "torch ops", "bit_identical": bool(same)}


def fused_check(device: str, dtype: torch.dtype) -> dict:
    """A 3-layer stack's outputs and one SGD step, fused kernels against torch ops."""
    gen = torch.Generator(device=device).manual_seed(0)
    weights = [torch.randn(64, 64, generator=gen, device=device).div(8).to(dtype) for _ in range(3)]
    x = torch.randn(8, 16, 64, generator=gen, device=device).to(dtype)
    keys, _ = layer_keys(es_random.key(3, device=device), 3, with_bias=False)
    stacks = [LowRankStack([w.clone() for w in weights], keys, sigma=0.1, rank=4, num_members=8, fused=fused)
              for fused in (None, False)]
    noises = [s.draw(1) for s in stacks]
    outputs = [s.forward(x, n) for s, n in zip(stacks, noises)]
    fitnesses = standardize(stacks[1].forward(x, noises[1], reduce="mean"))
    for s, n in zip(stacks, noises):
        s.sgd_step_(fitnesses, n, 0.1)
    results = [compare(outputs[0], outputs[1], "trajectory")]
    results += [compare(a, b, "trajectory") for a, b in zip(stacks[0].weights, stacks[1].weights)]
    return {"ok": all(r.ok for r in results), "max_ulp": max(r.max_ulp for r in results)}


def run(device: str) -> dict:
    """All checks; failures are reported, never raised."""
    outcome = {}
    for dtype in (torch.float32, torch.bfloat16):
        name = str(dtype).replace("torch.", "")
        for check in (noise_check, fused_check):
            try:
                outcome[f"{check.__name__[:-6]}_{name}"] = check(device, dtype)
            except Exception as error:  # noqa: BLE001 - a failing check is a result
                outcome[f"{check.__name__[:-6]}_{name}"] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
    return outcome
