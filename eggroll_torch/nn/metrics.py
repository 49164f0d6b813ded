"""What :meth:`EggrollTrainer.update` reports about a generation, computed on the device."""
from __future__ import annotations

from collections.abc import Mapping

import torch


def update_metrics(raw: torch.Tensor, old: Mapping[str, torch.Tensor], new: Mapping[str, torch.Tensor]) -> dict:
    """Raw-score statistics and the update's norm, as 0-d tensors on the device."""
    stats_dtype = torch.promote_types(raw.dtype, torch.float32)
    return {
        "fitness_mean": raw.to(stats_dtype).mean(),
        "fitness_max": raw.max().to(stats_dtype),
        "fitness_min": raw.min().to(stats_dtype),
        "update_norm": _change_norm(old, new),
    }


def _change_norm(old: Mapping[str, torch.Tensor], new: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Global L2 norm of ``new - old`` over all parameters, accumulated in float32 (float64 for
    float64 parameters)."""
    total = None
    for path, before in old.items():
        wide = torch.promote_types(before.dtype, torch.float32)
        part = (new[path].to(wide) - before.to(wide)).square().sum()
        total = part if total is None else total.to(torch.promote_types(total.dtype, part.dtype)) + part
    return torch.zeros(()) if total is None else total.sqrt()
