"""All-gather of the raw fitnesses: each rank contributes its members' scores, or word that it
could not produce them, and every rank gets the whole population's vector.

Each rank sends one float64 row of fixed length ``2 + max(len(range) for range in ranges)``:
``[status, dtype code, score_0, ..., score_{n-1}, padding]``. float64 holds every
float16/bfloat16/float32/float64 value exactly, so casting the gathered scores back to the
ranks' common dtype returns the very bits each rank computed. The full vector is the rows'
scores concatenated in rank order, i.e. thread id order, because rank ``r`` evaluates the
``r``-th contiguous range.

A rank whose evaluation raised still takes part (status ``failed``), so its peers stop at once
with a :class:`RankFailureError` naming it instead of waiting out the timeout.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from .collectives import all_gather_rows
from .errors import RankFailureError

FITNESS_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# Status word of a row: 0 (the zero-initialized row) when its scores are valid.
_FAILED = 1.0
_HEADER = 2


def check_local_fitness(value, members: range, device: torch.device) -> torch.Tensor:
    """The rank's raw scores ``(len(members),)``, validated like the single-process trainer
    validates a full vector: a floating tensor of a supported dtype, on ``device``."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"fitness_fn must return a torch.Tensor of shape ({len(members)},) for thread ids "
            f"{members.start}..{members.stop - 1}, got {type(value).__name__}"
        )
    if value.dtype not in FITNESS_DTYPES:
        raise TypeError(
            f"fitness_fn returned dtype {value.dtype}; return one of {[str(d) for d in FITNESS_DTYPES]} "
            "(e.g. .float())"
        )
    if value.shape != (len(members),):
        raise ValueError(
            f"fitness_fn returned shape {tuple(value.shape)} but it was given {len(members)} "
            f"members (thread ids {members.start}..{members.stop - 1}); return one score per member "
            f"of the population it was given, shape ({len(members)},)"
        )
    if value.device != device:
        raise ValueError(f"fitness_fn returned a tensor on {value.device}; the parameters are on {device}")
    return value


def gather_fitness(
    outcome: torch.Tensor | Exception,
    ranges: list[range],
    *,
    comm_device: torch.device,
    out_device: torch.device,
    group=None,
    when: str,
) -> torch.Tensor:
    """The full raw fitness vector ``(N,)``, identical on every rank, from each rank's
    ``outcome``: its validated scores for ``ranges[rank]``, or the exception its evaluation raised.

    A rank whose ``outcome`` is an exception re-raises it after the exchange (also when the
    exchange itself failed: its own error is the root cause); every other rank then raises
    :class:`RankFailureError` naming the failed ranks. Ranks that returned different dtypes all
    raise ``TypeError``.
    """
    width = _HEADER + max(len(r) for r in ranges)
    row = torch.zeros(width, dtype=torch.float64, device=comm_device)
    if isinstance(outcome, Exception):
        row[0] = _FAILED
    else:
        row[1] = FITNESS_DTYPES.index(outcome.dtype)
        row[_HEADER:_HEADER + outcome.numel()] = outcome.detach().to(device=comm_device, dtype=torch.float64)
    try:
        rows = all_gather_rows(row, group=group, what=f"the fitness exchange {when}")
    except RankFailureError:
        if isinstance(outcome, Exception):
            raise outcome from None
        raise
    header = rows[:, :_HEADER].tolist()
    failed = [rank for rank, (status, _) in enumerate(header) if status == _FAILED]
    if isinstance(outcome, Exception):
        raise outcome
    if failed:
        raise RankFailureError(
            f"rank {dist.get_rank(group)}: ranks {failed} failed while evaluating their members "
            f"{when} (thread ids {[(ranges[r].start, ranges[r].stop - 1) for r in failed]}); their "
            "own error says why. No update was made on any rank"
        )
    codes = {int(code) for _, code in header}
    if len(codes) > 1:
        raise TypeError(
            f"the ranks' fitness_fn returned different dtypes {when}: "
            f"{[str(FITNESS_DTYPES[int(code)]) for _, code in header]}; return the same dtype on every rank"
        )
    scores = torch.cat([rows[rank, _HEADER:_HEADER + len(r)] for rank, r in enumerate(ranges)])
    return scores.to(device=out_device, dtype=FITNESS_DTYPES[codes.pop()])
