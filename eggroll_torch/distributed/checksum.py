"""A cheap fingerprint of a trainer's state, compared across ranks to catch silent divergence.

Each tensor's raw bytes ``b_0 .. b_{n-1}`` (any dtype, read as unsigned bytes) give two integer
sums on its own device, ``sum b_i`` and ``sum b_i * (i mod 65521 + 1)``; both are exact int64
sums (no overflow below 2**39 bytes per tensor), so the order a device adds them in does not
matter and equal bits always give equal sums. One host transfer brings the sums of all tensors
back, where they are folded together with each leaf's dtype and shape (and non-tensor leaves'
``repr``) into one integer. Any single flipped bit changes it; it is not a cryptographic hash.
"""
from __future__ import annotations

import hashlib
import zlib

import torch
import torch.distributed as dist

from eggroll_torch import tree
from .collectives import all_gather_rows
from .errors import DivergenceError

_BYTE_WEIGHT_PERIOD = 65521
_FOLD_MODULUS = (1 << 61) - 1
_FOLD_MULTIPLIER = 1_000_003


def _byte_sums(t: torch.Tensor) -> torch.Tensor:
    data = t.detach().contiguous().view(-1).view(torch.uint8).to(torch.int64)
    weight = torch.arange(data.numel(), dtype=torch.int64, device=data.device)
    weight = weight.remainder_(_BYTE_WEIGHT_PERIOD).add_(1)
    return torch.stack((data.sum(), (data * weight).sum()))


def state_checksum(state) -> int:
    """An integer in ``[0, 2**61 - 1)`` fingerprinting every leaf of the pytree ``state``
    (e.g. ``EggrollTrainer.state_dict()``): tensors by their bits, dtype and shape, other leaves
    by ``repr``. Equal states give equal checksums on any device of the same kind."""
    values = []
    sums = []
    for leaf in tree.leaves(state):
        if isinstance(leaf, torch.Tensor):
            values.append(zlib.crc32(f"{leaf.dtype}{tuple(leaf.shape)}".encode()))
            sums.append(_byte_sums(leaf))
        else:
            values.append(zlib.crc32(repr(leaf).encode()))
    if sums:
        values.extend(torch.stack([pair.to(sums[0].device) for pair in sums]).flatten().tolist())
    folded = 0
    for value in values:
        folded = (folded * _FOLD_MULTIPLIER + value) % _FOLD_MODULUS
    return folded


def state_digest(state) -> str:
    """SHA-256 hex digest of every leaf of ``state`` (tensors: dtype, shape and bytes, copied to
    the host; other leaves: ``repr``), for comparing runs across processes, machines and files."""
    digest = hashlib.sha256()
    for leaf in tree.leaves(state):
        if isinstance(leaf, torch.Tensor):
            digest.update(f"{leaf.dtype}{tuple(leaf.shape)}".encode())
            digest.update(leaf.detach().contiguous().view(-1).view(torch.uint8).cpu().numpy().tobytes())
        else:
            digest.update(repr(leaf).encode())
    return digest.hexdigest()


def check_in_sync(state, *, device: torch.device, group=None, when: str) -> int:
    """Compare :func:`state_checksum` of ``state`` across the ranks of ``group``; returns it.

    Every rank receives every checksum, so on a mismatch every rank raises the same
    :class:`DivergenceError` (naming the ranks that disagree with rank 0, and ``when``).
    """
    mine = state_checksum(state)
    every = all_gather_rows(
        torch.tensor([mine], dtype=torch.int64, device=device), group=group, what=f"the state checksum {when}"
    ).flatten().tolist()
    if len(set(every)) > 1:
        odd = [rank for rank, value in enumerate(every) if value != every[0]]
        raise DivergenceError(
            f"rank {dist.get_rank(group)}: the trainer state differs across ranks {when}: ranks {odd} "
            f"disagree with rank 0 (checksums {every}). The ranks did not compute the same update "
            "(different model, seed, library version or device kind, or state changed outside the "
            "trainer); stop and restart every rank from one checkpoint"
        )
    return mine
