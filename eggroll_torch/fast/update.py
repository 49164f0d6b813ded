"""EGGROLL's update as one matmul per layer over the pairs' stacked, fitness-weighted factors.

Upstream's estimate for an ``(a, b)`` matrix is ``sum_n f_n (c_n A_n) @ B_n.T / N`` and the
optimizer receives ``-(estimate * sqrt(N))``. The two members of pair ``p`` share ``A_p, B_p``
and have opposite ``c``, so the sum collapses to ``sum_p w_p A_p @ B_p.T`` with
``w_p = (sigma / sqrt(r)) * (f_2p - f_2p+1)``: half the work, and with the factors stacked as
``(P * r, features)`` matrices it is a single ``(a, P*r) @ (P*r, b)`` product. Non-matrix
parameters get full noise ``sigma * z_p`` without the ``sqrt(r)``, and the same weights.
"""
from __future__ import annotations

import math

import torch


def pair_weights(fitnesses: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale * (f_2p - f_2p+1) * sqrt(N) / N`` for every pair: ``(N,) -> (N // 2,)`` float32.

    ``scale`` is ``sigma / sqrt(rank)`` for matrices and ``sigma`` for other parameters.
    """
    if fitnesses.ndim != 1 or fitnesses.shape[0] % 2:
        raise ValueError(
            f"fitnesses must be (N,) with an even N (antithetic pairs); got shape {tuple(fitnesses.shape)}"
        )
    n = fitnesses.shape[0]
    pairs = fitnesses.float().view(-1, 2)
    return (pairs[:, 0] - pairs[:, 1]) * (scale * math.sqrt(n) / n)


def matrix_step(factors: torch.Tensor, weights: torch.Tensor, in_features: int) -> torch.Tensor:
    """``sum_p weights[p] * A_p @ B_p.T``: the negated gradient of an ``(out, in)`` matrix.

    factors: ``(P, r, in + out)`` (contiguous, see :mod:`.lowrank`); weights: ``(P,)`` from
    :func:`pair_weights`. Returns ``(out, in)`` in the factors' dtype.
    """
    stacked = factors.reshape(-1, factors.shape[-1])
    b_rows, a_rows = stacked[:, :in_features], stacked[:, in_features:]
    weighted = (b_rows * weights.repeat_interleave(factors.shape[1])[:, None]).to(factors.dtype)
    return a_rows.T @ weighted


def matrix_sgd_(weight: torch.Tensor, factors: torch.Tensor, weights: torch.Tensor, lr: float) -> torch.Tensor:
    """In place: ``weight -= lr * gradient``, the gradient's matmul fused with the addition."""
    stacked = factors.reshape(-1, factors.shape[-1])
    in_features = weight.shape[1]
    b_rows, a_rows = stacked[:, :in_features], stacked[:, in_features:]
    weighted = (b_rows * weights.repeat_interleave(factors.shape[1])[:, None]).to(factors.dtype)
    return weight.addmm_(a_rows.T, weighted, alpha=lr)


def vector_step(noise: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_p weights[p] * z_p``: the negated gradient of a non-matrix parameter.

    noise: ``(P, *shape)`` unit normals (sign and ``sigma`` not applied). Returns ``shape``.
    """
    return torch.tensordot(weights.to(noise.dtype), noise, dims=1)
