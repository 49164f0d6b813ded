"""Joining the process group that ``torchrun`` sets up.

``torchrun`` starts one process per GPU (or per CPU worker) and describes the run in each
process's environment: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``. :func:`init_distributed` reads them, picks the backend (NCCL for GPUs, gloo for
CPUs), binds the rank to its GPU and sets the timeout after which a collective that some rank
never joins fails instead of waiting forever.
"""
from __future__ import annotations

import datetime
import math
import numbers
import os

import torch
import torch.distributed as dist

BACKENDS = ("nccl", "gloo")
_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def init_distributed(backend: str | None = None, *, timeout_s: float = 600.0) -> torch.device:
    """Initialize the default process group from the environment; returns this rank's device.

    backend: ``"nccl"`` (one CUDA device per process: ``cuda:LOCAL_RANK``) or ``"gloo"`` (CPU);
        default NCCL when CUDA is available, else gloo.
    timeout_s: how long any rank waits in a collective for the others, i.e. the longest a rank
        may lag behind in one generation before the run fails with ``RankFailureError``. For
        NCCL this sets ``TORCH_NCCL_BLOCKING_WAIT=1`` (unless already set) so that the timeout
        raises in Python on the waiting ranks rather than only aborting them from a watchdog.
    """
    missing = [name for name in _TORCHRUN_ENV if name not in os.environ]
    if missing:
        raise RuntimeError(
            f"the environment lacks {missing}: launch with torchrun (e.g. `torchrun --nproc-per-node 2 "
            "train.py`), which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT"
        )
    if dist.is_initialized():
        raise RuntimeError("torch.distributed is already initialized; call init_distributed once per process")
    if (isinstance(timeout_s, bool) or not isinstance(timeout_s, numbers.Real)
            or not math.isfinite(timeout_s) or timeout_s <= 0):
        raise ValueError(f"timeout_s must be a finite number of seconds > 0, got {timeout_s!r}")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} (or None to pick by device), got {backend!r}")
    timeout = datetime.timedelta(seconds=float(timeout_s))
    if backend == "gloo":
        dist.init_process_group("gloo", timeout=timeout)
        return torch.device("cpu")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not torch.cuda.is_available() or local_rank >= torch.cuda.device_count():
        raise RuntimeError(
            f"backend 'nccl' needs CUDA device {local_rank} (LOCAL_RANK) but "
            f"{torch.cuda.device_count()} are visible; use --nproc-per-node <= the GPU count, or gloo"
        )
    device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    os.environ.setdefault("TORCH_NCCL_BLOCKING_WAIT", "1")
    dist.init_process_group("nccl", timeout=timeout, device_id=device)
    return device
