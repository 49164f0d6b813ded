"""Which thread ids each rank evaluates.

Members ``2i`` and ``2i + 1`` are an antithetic pair (same factors, opposite sign), so the
population is dealt out in whole blocks of an even number of members (default: one pair): rank
``r`` gets one contiguous range of thread ids starting at a multiple of the block. With
``B = ceil(N / block)`` blocks over ``W`` ranks, the first ``B mod W`` ranks get
``floor(B / W) + 1`` blocks and the rest ``floor(B / W)``, so the work differs by at most one
block between ranks; a short last block (``N`` not a multiple of the block, an odd ``N`` leaving
its last member unpaired) stays with the last rank. A population with fewer blocks than ranks is
refused: a rank with nothing to evaluate is a launch mistake, not a plan.

Larger blocks serve batch-invariant evaluation: when every forward call covers exactly one block
(:class:`DistributedTrainer`'s ``members_per_call``), each call has the same shape whatever the
world size, so kernels that pick their algorithm by shape give the same bits everywhere.
"""
from __future__ import annotations

import numbers


def _integer(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def member_ranges(population_size: int, world_size: int, block: int = 2) -> list[range]:
    """``world_size`` contiguous ranges of thread ids covering ``0 .. population_size - 1`` in
    rank order, each starting at a multiple of ``block`` (see the module docstring).

    Raises ``TypeError`` for non-integer arguments and ``ValueError`` for an odd ``block`` or
    when ``ceil(population_size / block) < world_size``.
    """
    population_size = _integer("population_size", population_size, 1)
    world_size = _integer("world_size", world_size, 1)
    block = _integer("block", block, 2)
    if block % 2:
        raise ValueError(f"block must be even so that antithetic pairs stay together, got {block}")
    blocks = -(-population_size // block)
    if blocks < world_size:
        raise ValueError(
            f"population_size={population_size} holds {blocks} blocks of {block} members, fewer than "
            f"the {world_size} ranks, and a block is never split across ranks; use a population of "
            f"at least {block * world_size} members, a smaller block or fewer processes"
        )
    base, extra = divmod(blocks, world_size)
    ranges, start = [], 0
    for rank in range(world_size):
        stop = min(start + block * (base + (rank < extra)), population_size)
        ranges.append(range(start, stop))
        start = stop
    return ranges


def blocks_of(members: range, block: int) -> list[range]:
    """``members`` (starting at a multiple of ``block``) cut into consecutive ranges of ``block``
    thread ids, the last one possibly shorter."""
    return [range(start, min(start + block, members.stop)) for start in range(members.start, members.stop, block)]
