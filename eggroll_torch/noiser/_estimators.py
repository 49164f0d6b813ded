"""Per-parameter gradient estimates ``sum_n f_n * noise_n / N`` of the population.

Each estimator takes upstream's per-leaf update arguments ``(base_sigma, param, key, scores,
iterinfo, frozen_noiser_params)`` after a leading noise function (a noiser's ``full_noise`` or
``lora_noise``), with ``param (*S, *shape)`` and ``key (*S, 2)`` (``S``: stacked scanned layers,
or the leaves of a batched update), and returns ``(*S, *shape)``: the plain weighted mean, whose
sign and ``sqrt(N)`` scaling ``_update.leaf_gradient`` applies. All members' noise is drawn in
one call per leaf.
"""
from __future__ import annotations

from functools import partial

import torch

from ..numerics import divide_by_broadcast, mean, weak_scalar
from ._member import broadcast_members, lora_sigma


def update_fns(noiser):
    """``noiser``'s per-leaf estimators, indexed by es class (PARAM, MM_PARAM, EMB_PARAM, EXCLUDED),
    each called as ``(base_sigma, param, key, scores, iterinfo, frozen_noiser_params)``: full-noise
    for PARAM, ``noiser.matrix_gradient`` for MM_PARAM, zeros for the others.

    Upstream's modules define them as ``_simple_full_update``, ``_simple_lora_update`` (or
    ``_simple_sparse_update``) and ``_noop_update``; each noiser module binds those names with this
    helper. The noise comes from ``noiser``'s classmethods, so a subclass's noise reaches its update.
    """
    return (partial(nonlora_gradient, noiser.full_noise), noiser.matrix_gradient, zero_gradient, zero_gradient)


def member_axis(key: torch.Tensor) -> int:
    """Position of the member axis in drawn noise: right after the key's leading ``S`` axes."""
    return key.ndim - 1


def full_rank_gradient(noise_fn, base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """``mean_n(f_n * noise_n)`` computed in the promoted dtype, then cast to ``param.dtype``."""
    noise = noise_fn(frozen_noiser_params, base_sigma, iterinfo, param, key)
    weighted = broadcast_members(scores, param.ndim - member_axis(key)) * noise
    return mean(weighted, member_axis(key)).to(param.dtype)


def nonlora_gradient(noise_fn, base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """:func:`full_rank_gradient` of a ``PARAM`` leaf; zeros when ``freeze_nonlora``."""
    if frozen_noiser_params["freeze_nonlora"]:
        return torch.zeros_like(param)
    return full_rank_gradient(noise_fn, base_sigma, param, key, scores, iterinfo, frozen_noiser_params)


def contract_members(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``einsum('...nir,...njr->...ij', A, B)`` as one matmul over the joint (member, rank) axis."""
    dtype = torch.promote_types(A.dtype, B.dtype)
    a_rows = A.to(dtype).movedim(-2, -3).flatten(-2)
    b_rows = B.to(dtype).movedim(-2, -3).flatten(-2)
    return torch.matmul(a_rows, b_rows.transpose(-1, -2))


def divide_by_population(estimate: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """``estimate / N``, the way XLA divides by a scalar (reciprocal multiply)."""
    return divide_by_broadcast(estimate, weak_scalar(scores.shape[0], estimate))


def low_rank_gradient(lora_fn, base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """``sum_n f_n * A_n @ B_n.T / N`` for a matrix ``(*S, a, b)``, with the factors as drawn by
    ``lora_fn`` at ``base_sigma / sqrt(rank)`` (sign and scale inside ``A``).

    The fitness multiplies ``A`` (``(*S, N, a, r)``) before one contraction over members and rank.
    Not cast back to ``param.dtype``: it keeps the dtype that fitness (usually float32) times
    ``A`` promotes to.
    """
    sigma = lora_sigma(base_sigma, frozen_noiser_params["rank"], param.dtype, param.device)
    A, B = lora_fn(frozen_noiser_params, sigma, iterinfo, param, key)
    return divide_by_population(contract_members(broadcast_members(scores, 2) * A, B), scores)


def zero_gradient(base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """No update (``EMB_PARAM``, ``EXCLUDED``)."""
    return torch.zeros_like(param)
