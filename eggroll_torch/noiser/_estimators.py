"""Per-parameter gradient estimates ``sum_n f_n * noise_n / N`` of the population.

Each takes upstream's arguments ``(base_sigma, param, key, scores, iterinfo, frozen)`` with
``param (*S, *shape)`` and ``key (*S, 2)`` (``S``: stacked scanned layers, or the leaves of a
batched update) and returns ``(*S, *shape)``. All members' noise is drawn in one call per leaf.
"""
from __future__ import annotations

import torch

from ..numerics import divide_by_broadcast, mean, weak_scalar
from ._member import broadcast_members, lora_sigma


def member_axis(key: torch.Tensor) -> int:
    """Position of the member axis in drawn noise: right after the key's leading ``S`` axes."""
    return key.ndim - 1


def zero_gradient(base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """No update (``EMB_PARAM``, ``EXCLUDED``)."""
    return torch.zeros_like(param)


def full_noise_gradient(noise_fn, base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """``mean_n(f_n * noise_n)`` for full-rank noise, cast to ``param.dtype``."""
    noise = noise_fn(frozen_noiser_params, base_sigma, iterinfo, param, key)
    weighted = broadcast_members(scores, param.ndim - member_axis(key)) * noise
    return mean(weighted, member_axis(key)).to(param.dtype)


def nonlora_gradient(noise_fn, base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """:func:`full_noise_gradient` of a ``PARAM`` leaf; zeros when ``freeze_nonlora``."""
    if frozen_noiser_params["freeze_nonlora"]:
        return torch.zeros_like(param)
    return full_noise_gradient(noise_fn, base_sigma, param, key, scores, iterinfo, frozen_noiser_params)


def contract_members(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``einsum('...nir,...njr->...ij', A, B)`` as one matmul over the joint (member, rank) axis."""
    dtype = torch.promote_types(A.dtype, B.dtype)
    a_rows = A.to(dtype).movedim(-2, -3).flatten(-2)
    b_rows = B.to(dtype).movedim(-2, -3).flatten(-2)
    return torch.matmul(a_rows, b_rows.transpose(-1, -2))


def divide_by_population(estimate: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """``estimate / N``, the way XLA divides by a scalar (reciprocal multiply)."""
    return divide_by_broadcast(estimate, weak_scalar(scores.shape[0], estimate))


def low_rank_gradient(factor_fn, base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """``sum_n f_n * A_n @ B_n.T / N`` for a matrix ``(*S, a, b)``, with the factors as drawn
    by ``factor_fn`` (sign and ``sigma / sqrt(rank)`` inside ``A``)."""
    sigma = lora_sigma(base_sigma, frozen_noiser_params["rank"], param.dtype, param.device)
    A, B = factor_fn(frozen_noiser_params, sigma, iterinfo, param, key)
    return divide_by_population(contract_members(broadcast_members(scores, 2) * A, B), scores)
