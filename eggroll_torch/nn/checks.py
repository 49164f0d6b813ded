"""The trainer's own argument check: what only it knows (its population size). Every other
argument is checked with :mod:`eggroll_torch.validation`, shared with the functional layer."""
from __future__ import annotations

from eggroll_torch.validation import check_count


def group_size(value, population_size: int) -> int:
    """``group_size`` as an int: 0 (one global normalization) or a divisor of ``population_size``."""
    size = check_count("group_size", value, 0)
    if size and population_size % size:
        raise ValueError(
            f"group_size={size} does not divide population_size={population_size}; fitnesses are "
            f"normalized in groups of group_size members, so pick a divisor of {population_size} "
            "(or 0 for one global normalization)"
        )
    return size
