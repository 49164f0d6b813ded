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


def _stacked(factors: torch.Tensor, weights: torch.Tensor, in_features: int):
    """``(A rows, weighted B rows)``, both ``(P * r, features)``: the update matmul's operands.

    For half-precision factors the pair weights are rounded to that dtype first, so that the
    scaling is one pass over ``B`` in its own dtype (upstream scales in float32; the difference
    is one rounding of each pair's weight, far below the final rounding of the update).
    """
    a_rows = factors.reshape(-1, factors.shape[-1])[:, in_features:]
    weighted = factors[:, :, :in_features] * weights.to(factors.dtype)[:, None, None]
    return a_rows, weighted.reshape(-1, in_features)


def matrix_step(factors: torch.Tensor, weights: torch.Tensor, in_features: int) -> torch.Tensor:
    """``sum_p weights[p] * A_p @ B_p.T``: minus the gradient of an ``(out, in)`` matrix when
    ``weights`` come from :func:`pair_weights` (pass ``-weights`` for the gradient itself).

    factors: ``(P, r, in + out)`` (contiguous, see :mod:`.lowrank`); weights: ``(P,)``.
    Returns ``(out, in)`` in the factors' dtype.
    """
    a_rows, weighted = _stacked(factors, weights, in_features)
    return a_rows.T @ weighted


def matrix_sgd_(weight: torch.Tensor, factors: torch.Tensor, weights: torch.Tensor, lr: float) -> torch.Tensor:
    """In place: ``weight -= lr * gradient``, the gradient's matmul fused with the addition."""
    a_rows, weighted = _stacked(factors, weights, weight.shape[1])
    return weight.addmm_(a_rows.T, weighted, alpha=lr)


def vector_step(noise: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_p weights[p] * z_p`` for a non-matrix parameter (signs as in :func:`matrix_step`).

    noise: ``(P, size)`` unit normals (sign and ``sigma`` not applied). Returns ``(size,)``.
    """
    return weights.to(noise.dtype) @ noise
