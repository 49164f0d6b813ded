"""Argument checks of the nn trainer: each names the argument and the fix, and runs before any
state changes. The generic ones are :mod:`eggroll_torch.validation`'s, shared with the
functional layer; this module adds what only the trainer knows (its population size)."""
from __future__ import annotations

import torch

from eggroll_torch.validation import check_count as count
from eggroll_torch.validation import check_fitnesses
from eggroll_torch.validation import check_positive_real as positive_float
from eggroll_torch.validation import check_real as finite_float

__all__ = ["count", "finite_float", "group_size", "positive_float", "raw_fitness"]


def group_size(value, population_size: int) -> int:
    """``group_size`` as an int: 0 (one global normalization) or a divisor of ``population_size``."""
    size = count("group_size", value, 0)
    if size and population_size % size:
        raise ValueError(
            f"group_size={size} does not divide population_size={population_size}; fitnesses are "
            f"normalized in groups of group_size members, so pick a divisor of {population_size} "
            "(or 0 for one global normalization)"
        )
    return size


def raw_fitness(value, population_size: int, device: torch.device) -> torch.Tensor:
    """The raw fitness ``(N,)``: floating, on ``device``, one finite value per member.

    Synchronizes with the device once (the finiteness check).
    """
    return check_fitnesses(value, population_size, device, name="fitness")
