"""Shared helpers of the nn-trainer tests: explicit per-member models and state snapshots."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from eggroll_torch.nn import MM_PARAM, PARAM, EggrollTrainer

CUDA = pytest.param("cuda", marks=pytest.mark.cuda)
DEVICES = ["cpu", CUDA]


def small_net(dtype=torch.float32, device="cpu") -> nn.Module:
    """Linear -> ReLU -> LayerNorm -> Linear: MM weights, biases and a non-Linear PARAM leaf."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.LayerNorm(12), nn.Linear(12, 3))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
        # Outputs near 2 instead of 0: parity is measured in ULPs of each element, and an output
        # that cancels to ~0 would be judged at its own tiny scale rather than the computation's.
        net[3].bias.add_(2.0)
    return net.to(device=device, dtype=dtype)


def explicit_member(trainer: EggrollTrainer, member: int) -> nn.Module:
    """A copy of ``trainer.module`` holding member ``member``'s perturbed parameters as dense
    tensors, derived from the functional layer without the nn population code.

    An ``MM_PARAM`` weight ``W`` (out, in) becomes the noiser's own ``do_mm`` applied to an
    identity input, transposed: ``(I @ W.T + I @ B @ A.T).T = W + A @ B.T``, whatever the noiser.
    A ``PARAM`` leaf becomes ``get_noisy_standard`` for the population, row ``member``.
    """
    frozen, noiser_params = trainer.frozen_noiser_params, trainer.noiser_params
    iterinfo = trainer.iterinfo()
    n = trainer.population_size
    clone = copy.deepcopy(trainer.module)
    with torch.no_grad():
        for path, param in clone.named_parameters():
            key = trainer.keys[path]
            es_class = trainer.es_classes[path]
            if es_class == MM_PARAM:
                eye = torch.eye(param.shape[1], dtype=param.dtype, device=param.device).expand(n, -1, -1)
                dense = trainer.noiser.do_mm(frozen, noiser_params, param, key, iterinfo, eye)
                param.copy_(dense[member].T)
            elif es_class == PARAM:
                noisy = trainer.noiser.get_noisy_standard(frozen, noiser_params, param, key, iterinfo)
                param.copy_(noisy[member] if noisy.ndim == param.ndim + 1 else noisy)
    return clone


def snapshot(trainer: EggrollTrainer) -> dict:
    """A deep copy of everything the trainer would save."""
    return copy.deepcopy(trainer.state_dict())
