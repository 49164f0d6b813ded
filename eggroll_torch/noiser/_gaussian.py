"""Gaussian noise of a member: low-rank factors for matrices, full noise for other params.

Both functions accept a parameter ``(*S, *shape)`` with its key ``(*S, 2)`` (``S`` empty unless
the parameter stacks scanned layers) and draw the noise of every member in ONE vectorized
``random.normal`` call. Output shapes put the member shape ``M`` (``()`` or ``(N,)``) after ``S``.
"""
from __future__ import annotations

import torch

from .. import random
from ._member import Members, antithetic_sigma, as_members, broadcast_members, member_key


def draw_normal(frozen_noiser_params, members: Members, param: torch.Tensor, key: torch.Tensor, shape) -> torch.Tensor:
    """Standard normals ``(*S, *M, *shape)`` in ``param.dtype``, one member key each, one call."""
    keys = member_key(frozen_noiser_params["noise_reuse"], members, key.to(param.device))
    return random.normal(keys, shape, dtype=param.dtype)


def inner_shape(param: torch.Tensor, key: torch.Tensor) -> tuple[int, ...]:
    """The per-layer shape: ``param``'s shape without the ``S`` axes its key carries."""
    return tuple(param.shape[key.ndim - 1:])


def get_lora_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key):
    """Low-rank factors ``(A, B)``: ``A (*S, *M, a, r)`` with ``+-base_sigma`` folded in, ``B (*S, *M, b, r)``.

    ``param`` is ``(*S, a, b)``; one normal draw ``(a + b, r)`` per member is split as ``B`` =
    rows ``[:b]``, ``A`` = rows ``[b:]``. ``base_sigma`` is ``sigma / sqrt(rank)`` as the caller
    computed it (see ``_member.lora_sigma``); the perturbation is ``A @ B.T``.
    """
    members = as_members(iterinfo, param.device)
    a, b = inner_shape(param, key)
    draws = draw_normal(frozen_noiser_params, members, param, key, (a + b, frozen_noiser_params["rank"]))
    sigma = broadcast_members(antithetic_sigma(base_sigma, members, param.dtype), 2)
    return draws[..., b:, :] * sigma, draws[..., :b, :]


def get_nonlora_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key):
    """Full noise ``(*S, *M, *shape)``: ``+-base_sigma * normal(member key, shape)`` in ``param.dtype``."""
    members = as_members(iterinfo, param.device)
    shape = inner_shape(param, key)
    draws = draw_normal(frozen_noiser_params, members, param, key, shape)
    return draws * broadcast_members(antithetic_sigma(base_sigma, members, param.dtype), len(shape))
