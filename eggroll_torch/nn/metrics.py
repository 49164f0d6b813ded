"""What :meth:`EggrollTrainer.update` reports about a generation, computed on the device."""
from __future__ import annotations

from collections.abc import Mapping

import torch

from eggroll_torch.fast.dispatch import below_autograd
from eggroll_torch.optim._flat import concatenated_pair


def update_metrics(raw: torch.Tensor, old: Mapping[str, torch.Tensor], new: Mapping[str, torch.Tensor]) -> dict:
    """Raw-score statistics and the update's norm, as 0-d tensors on the device."""
    stats_dtype = _accumulation_dtype(raw.dtype)
    # Reports, never differentiated unless the raw scores are: below autograd they cost less.
    with below_autograd(raw):
        low, high = torch.aminmax(raw)
        return {
            "fitness_mean": (raw if raw.dtype == stats_dtype else raw.to(stats_dtype)).mean(),
            "fitness_max": high if high.dtype == stats_dtype else high.to(stats_dtype),
            "fitness_min": low if low.dtype == stats_dtype else low.to(stats_dtype),
            "update_norm": _change_norm(old, new),
        }


# The dtypes that are their own accumulation dtype (float32 at least).
_WIDE = (torch.float32, torch.float64)


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """``torch.promote_types(dtype, torch.float32)`` for a floating ``dtype``, without the
    dispatched call (two per step, on a step of a few hundred microseconds)."""
    return dtype if dtype in _WIDE else torch.promote_types(dtype, torch.float32)


def _change_norm(old: Mapping[str, torch.Tensor], new: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Global L2 norm of ``new - old`` over all parameters, accumulated in float32 (float64 for
    float64 parameters): each parameter's sum of squares, added in parameter order."""
    before, after = list(old.values()), [new[path] for path in old]
    if not before:
        return torch.zeros(())
    pair = concatenated_pair(before, after)
    if pair is not None:
        # The new params of a flat solver step are views of one tensor: with the old ones
        # concatenated in the same order, the change is a few passes over two 1-D tensors.
        _, flat_before, flat_after = pair
        return _flat_change_norm(flat_before, flat_after)
    if all(b.dtype in _WIDE and a.dtype is b.dtype and a.device == b.device for b, a in zip(before, after)):
        # Already in the accumulation dtype: the differences and squares in two calls.
        differences = torch._foreach_sub(after, before)
        squares = torch._foreach_mul(differences, differences)
    else:
        squares = []
        for b, a in zip(before, after):
            wide = torch.promote_types(b.dtype, torch.float32)
            squares.append((a.to(wide) - b.to(wide)).square())
    total = None
    for square in squares:
        part = square.sum()
        total = part if total is None else (total if total.dtype == part.dtype else
                                            total.to(torch.promote_types(total.dtype, part.dtype))) + part
    return total.sqrt()


def _flat_change_norm(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """:func:`_change_norm` of two 1-D tensors of one dtype (a flat step's tree is small: see
    :data:`eggroll_torch.optim._flat.MAX_ELEMENTS`)."""
    if before.dtype in _WIDE:
        return (after - before).square().sum().sqrt()
    wide = _accumulation_dtype(before.dtype)
    return (after.to(wide) - before.to(wide)).square().sum().sqrt()
