"""The one collective the distributed trainer uses, with failures turned into a clear error.

Every exchange is an all-gather of a tensor of the same size on every rank (fixed layout,
``torch.distributed.all_gather_into_tensor``): rank ``r``'s tensor lands at row ``r`` in every rank's
output, untouched, so all ranks read identical bits. Nothing is ever summed across ranks.
"""
from __future__ import annotations

import time

import torch
import torch.distributed as dist

from .errors import RankFailureError


def all_gather_rows(tensor: torch.Tensor, *, group=None, what: str) -> torch.Tensor:
    """``(world_size, *tensor.shape)``: every rank's ``tensor``, row ``r`` from rank ``r``.

    ``what`` names the exchange in the error. A peer that died, or that does not reach the same
    call within the process group's timeout, raises :class:`RankFailureError` (chained to the
    backend's own error) instead of the backend's bare ``RuntimeError``.
    """
    world_size = dist.get_world_size(group)
    out = torch.empty(world_size * tensor.numel(), dtype=tensor.dtype, device=tensor.device)
    try:
        work = dist.all_gather_into_tensor(out, tensor.contiguous().view(-1), group=group, async_op=True)
        _wait(work, group_timeout_s(group, tensor.device))
    except (RuntimeError, TimeoutError) as error:
        raise RankFailureError(
            f"rank {dist.get_rank(group)}: {what} did not complete: another rank died, hung past the "
            f"process group's timeout or left the run ({type(error).__name__}: {_first_line(error)}). "
            "The process group is unusable now; end every process and resume from the last "
            "checkpoint (DistributedTrainer.load_checkpoint), on any number of ranks"
        ) from error
    return out.view(world_size, *tensor.shape)


def _wait(work, timeout_s: float) -> None:
    """``work.wait()``, but raising ``TimeoutError`` once ``timeout_s`` has passed.

    The deadline is kept here, on the host, rather than left to the backend: with NCCL a rank
    whose peer died stays blocked in the collective (seen with torch 2.11, ``TORCH_NCCL_BLOCKING_WAIT``
    set), and polling ``is_completed`` is the one wait that always returns.
    """
    deadline = time.monotonic() + timeout_s
    pause = 0.0
    while not work.is_completed():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no answer from every rank within the process group's timeout ({timeout_s:g} s)")
        time.sleep(pause)
        pause = min(1e-3, 2 * pause + 1e-5)
    work.wait()


def group_timeout_s(group, device: torch.device) -> float:
    """The timeout ``group`` was created with (``init_process_group(timeout=...)``), in seconds;
    torch's default for the backend when the group does not expose it."""
    try:
        owner = group if group is not None else dist.distributed_c10d._get_default_group()
        return owner._get_backend(device).options._timeout.total_seconds()
    except (AttributeError, RuntimeError):
        return dist.distributed_c10d._get_default_timeout(dist.get_backend(group)).total_seconds()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "no message"


def agree(error: Exception | None, *, group=None, what: str) -> None:
    """Let every rank know whether every rank succeeded at ``what``.

    Each rank passes the exception it hit (or ``None``). A rank that failed re-raises its own
    exception; the others raise :class:`RankFailureError` naming the failed ranks. When no rank
    failed this returns on every rank, after every rank got here (a barrier).
    """
    flag = torch.tensor([0 if error is None else 1], dtype=torch.int64, device=group_device(group))
    failed = [rank for rank, bad in enumerate(all_gather_rows(flag, group=group, what=what).flatten().tolist()) if bad]
    if error is not None:
        raise error
    if failed:
        raise RankFailureError(f"rank {dist.get_rank(group)}: ranks {failed} failed {what}; their own error says why")


def group_device(group) -> torch.device:
    """Where tensors for ``group``'s collectives must live: the current CUDA device for NCCL."""
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
