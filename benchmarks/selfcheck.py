"""Checks run on the benchmark's own device before timing anything.

What is timed must compute the right thing on that hardware: the trainer's bulk noise kernel
(Triton on CUDA, C on the CPU) is compared bit for bit with ``eggroll_torch.random.normal`` on
the same device, and the trainer's population forward (the engine's shared matmul plus rank-r
corrections) with each member's module run on its own dense perturbed parameters, which the
functional layer gives (``do_mm`` on an identity input, ``get_noisy_standard``).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from conformance.tolerances import compare
from eggroll_torch import random as es_random
from eggroll_torch.fast import draw_pair_normals, pair_keys, use_kernel
from eggroll_torch.nn import MM_PARAM, PARAM, EggrollTrainer

_WORD = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float16: torch.int16}


def noise_check(device: str, dtype: torch.dtype) -> dict:
    """The bulk draw against ``eggroll_torch.random.normal`` for 3 layers x 64 pairs x (136, 4)."""
    keys = es_random.split(es_random.key(7, device=device), 3)
    out = torch.empty(3, 64, 4, 136, dtype=dtype, device=device).transpose(2, 3)
    draw_pair_normals(keys, 5, out, noise_reuse=1)
    expected = es_random.normal(pair_keys(keys, 5, 64, 1), (136, 4), dtype)
    same = torch.equal(out.contiguous().view(_WORD[dtype]), expected.view(_WORD[dtype]))
    return {"kernel": use_kernel(device, dtype) or "torch ops", "bit_identical": bool(same)}


def _dense_member(trainer: EggrollTrainer, member: int) -> dict:
    frozen, noiser_params, iterinfo = trainer.frozen_noiser_params, trainer.noiser_params, trainer.iterinfo()
    params = {}
    for path, param in trainer.module.named_parameters():
        key, es_class = trainer.keys[path], trainer.es_classes[path]
        if es_class == MM_PARAM:
            eye = torch.eye(param.shape[1], dtype=param.dtype, device=param.device).expand(trainer.population_size,
                                                                                          -1, -1)
            params[path] = trainer.noiser.do_mm(frozen, noiser_params, param, key, iterinfo, eye)[member].T
        elif es_class == PARAM:
            params[path] = trainer.noiser.get_noisy_standard(frozen, noiser_params, param, key, iterinfo)[member]
    return params


def population_check(device: str, dtype: torch.dtype) -> dict:
    """A LayerNorm + MLP module's population outputs against every member's dense forward."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.LayerNorm(64), nn.Linear(64, 96), nn.Tanh(), nn.Linear(96, 64)).to(device, dtype)
    trainer = EggrollTrainer(module, 0.1, 0.01, population_size=8, rank=4, noise_reuse=1,
                             es_key=es_random.key(3, device=device))
    trainer.epoch = 2
    x = torch.randn(8, 16, 64, device=device).to(dtype)
    with torch.no_grad():
        got = trainer.population()(x)
        want = torch.stack([functional_call(module, _dense_member(trainer, m), (x[m],)) for m in range(8)])
    outcome = compare(got, want, "trajectory")
    return {"ok": outcome.ok, "max_ulp": outcome.max_ulp}


def run(device: str) -> dict:
    """All checks; failures are reported, never raised."""
    outcome = {}
    for dtype in (torch.float32, torch.bfloat16):
        name = str(dtype).replace("torch.", "")
        for check in (noise_check, population_check):
            try:
                outcome[f"{check.__name__[:-6]}_{name}"] = check(device, dtype)
            except Exception as error:  # noqa: BLE001 - a failing check is a result
                outcome[f"{check.__name__[:-6]}_{name}"] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
    return outcome
