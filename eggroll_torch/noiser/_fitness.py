"""Fitness shaping: raw scores of the population -> the weights of its noise in the update."""
from __future__ import annotations

import numpy
import torch

from ..numerics import divide_by_broadcast, mean, sqrt, std, var, weak_scalar
from ..validation import check_count, check_raw_scores

VARIANCE_EPS = 1e-5
STD_EPS = 1e-8


def standardize_fitnesses(raw_scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """``(raw - mean) / sqrt(var + 1e-5)`` of raw scores ``(N,)``; returns ``(N,)``.

    ``group_size == 0``: mean and (population, ddof 0) variance of all N scores; constant scores
    give zeros. ``group_size > 0``: each group of ``group_size`` consecutive members subtracts
    its own mean but all divide by the GLOBAL ``sqrt(var + 1e-5)``. ``N`` must be a multiple of it.
    """
    return standardize_unchecked(check_raw_scores(raw_scores, group_size), group_size)


def standardize_unchecked(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """:func:`standardize_fitnesses` of scores the caller has validated: the same values, with
    no host synchronisation (the finiteness check reads the device), so a CUDA graph can hold it."""
    if scores.device.type == "cpu" and scores.dtype in _HOST_SCALARS and not scores.requires_grad:
        return _standardize_host_spread(scores, group_size)
    return _standardize_ops(scores, group_size)


def _standardize_ops(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """:func:`standardize_unchecked` as tensor ops on any device and floating dtype."""
    spread = sqrt(var(scores, 0, keepdim=True) + weak_scalar(VARIANCE_EPS, scores))
    if group_size == 0:
        return divide_by_broadcast(scores - mean(scores, 0, keepdim=True), spread)
    groups = scores.reshape(-1, group_size)
    return divide_by_broadcast(groups - mean(groups, -1, keepdim=True), spread).reshape(-1)


# numpy's scalar types round each operation to the tensor dtype as the tensor ops do.
_HOST_SCALARS = {torch.float32: numpy.float32, torch.float64: numpy.float64}


def _standardize_host_spread(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """:func:`_standardize_ops` of float32/float64 CPU scores, bit for bit, with the global
    variance read once and ``sqrt(var + eps)`` and its reciprocal computed as numpy scalars of
    the scores' dtype: about half the tensor ops, which is most of the cost for a few hundred
    scores. The centered scores serve both the variance and (ungrouped) the result, as the
    ops path computes them twice with the same rounding.

    The root of the dtype's value in float64, rounded once, is the correctly rounded root (for
    float32; numpy's float64 root is correctly rounded), as :func:`eggroll_torch.numerics.sqrt` is.
    """
    host = _HOST_SCALARS[scores.dtype]
    centered = scores - mean(scores, 0, keepdim=True)
    variance = host(mean(centered * centered, 0).item())
    spread = host(numpy.sqrt(numpy.float64(variance + host(VARIANCE_EPS))))
    reciprocal = float(host(1) / spread)
    if group_size == 0:
        return centered * reciprocal
    groups = scores.reshape(-1, group_size)
    return ((groups - mean(groups, -1, keepdim=True)) * reciprocal).reshape(-1)


def baseline_fitnesses(raw_scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """EggRollBS's per-direction fitnesses ``(G,)`` from ``(Q * G,)`` or ``(Q, G)`` raw scores.

    Row ``q`` holds one group; its first member (unperturbed) is the baseline: ``Z = (S - S[:, :1]) /
    (std(row) + 1e-8)`` (population std), columns 0 and 1 (the unperturbed members) are zeroed and
    the result is the mean over rows. Note the output has length ``G``, not ``N``.
    """
    group_size = check_count("group_size", group_size, 1)
    if isinstance(raw_scores, torch.Tensor) and raw_scores.ndim == 2:
        if raw_scores.shape[1] != group_size:
            raise ValueError(
                f"raw_scores of shape {tuple(raw_scores.shape)} must have group_size={group_size} columns"
            )
        rows = raw_scores
        check_raw_scores(rows.reshape(-1), group_size)
    else:
        rows = check_raw_scores(raw_scores, group_size).reshape(-1, group_size)
    spread = std(rows, 1, keepdim=True) + weak_scalar(STD_EPS, rows)
    shaped = divide_by_broadcast(rows - rows[:, :1], spread).clone()
    shaped[:, :2] = 0
    return mean(shaped, 0)
