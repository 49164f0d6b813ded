"""Which thread ids each rank evaluates.

Members ``2i`` and ``2i + 1`` are an antithetic pair (same factors, opposite sign), so the
population is dealt out in whole pairs: rank ``r`` gets one contiguous range of thread ids whose
boundaries are even. With ``P = ceil(N / 2)`` pairs over ``W`` ranks, the first ``P mod W``
ranks get ``floor(P / W) + 1`` pairs and the rest ``floor(P / W)``, so the work differs by at
most one pair between ranks; an odd ``N`` leaves its unpaired last member with the last rank.
A population with fewer pairs than ranks is refused: a rank with nothing to evaluate is a
launch mistake, not a plan.
"""
from __future__ import annotations

import numbers


def member_ranges(population_size: int, world_size: int) -> list[range]:
    """``world_size`` contiguous ranges of thread ids covering ``0 .. population_size - 1`` in
    rank order, each starting at an even id (see the module docstring for the sizes).

    Raises ``TypeError`` for non-integer arguments and ``ValueError`` when
    ``ceil(population_size / 2) < world_size``.
    """
    for name, value in (("population_size", population_size), ("world_size", world_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    pairs = (population_size + 1) // 2
    if pairs < world_size:
        raise ValueError(
            f"population_size={population_size} holds {pairs} antithetic pairs, fewer than the "
            f"{world_size} ranks, and a pair is never split across ranks; use a population of at "
            f"least {2 * world_size} members or fewer processes"
        )
    base, extra = divmod(pairs, world_size)
    ranges, start = [], 0
    for rank in range(world_size):
        stop = min(start + 2 * (base + (rank < extra)), population_size)
        ranges.append(range(start, stop))
        start = stop
    return ranges
