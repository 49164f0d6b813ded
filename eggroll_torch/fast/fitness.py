"""Upstream's fitness shaping on the device, with no host synchronisation."""
from __future__ import annotations

import torch

VARIANCE_EPS = 1e-5


def standardize(raw: torch.Tensor, group_size: int = 0) -> torch.Tensor:
    """``(raw - mean) / sqrt(var + 1e-5)`` with the population variance (ddof=0): ``(N,) -> (N,)``.

    ``group_size > 0`` centres each consecutive group on its own mean but still divides by the
    global standard deviation, as upstream's EGGROLL does.
    """
    if raw.ndim != 1:
        raise ValueError(f"raw must be a 1-D tensor of fitnesses (N,); got shape {tuple(raw.shape)}")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 0:
        raise ValueError(f"group_size must be an int >= 0, got {group_size!r}")
    if group_size and raw.shape[0] % group_size:
        raise ValueError(
            f"raw has {raw.shape[0]} entries, not a multiple of group_size={group_size}; use group_size=0 "
            "or a population that is a whole number of groups"
        )
    # Not torch.var: on CPU it reads its result back through a host scalar.
    mean = raw.mean()
    scale = torch.sqrt((raw - mean).square().mean() + VARIANCE_EPS)
    if group_size == 0:
        return (raw - mean) / scale
    groups = raw.view(-1, group_size)
    return ((groups - groups.mean(dim=1, keepdim=True)) / scale).reshape(-1)
