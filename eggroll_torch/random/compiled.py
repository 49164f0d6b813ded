"""Fused threefry kernels built with ``torch.compile``: keys in, samples out, in one pass.

Eager torch runs the ~130 integer operations of a threefry hash as ~130 passes over memory;
inductor fuses them (and the table lookup of :mod:`normal_tables`) into one vectorized loop
(C++/OpenMP on CPU, Triton on CUDA). Only the partitionable layout with fewer than 2**31
positions per key is compiled; the kernels use the same operations as :mod:`threefry`, so the
words are identical. Shapes are dynamic: one compilation serves every (batch, shape).
"""
from __future__ import annotations

import functools
import shutil

import torch

from .threefry import _PARITY, _ROTATIONS

_OPTIONS = {"assert_indirect_indexing": False}


def _rotl(x: torch.Tensor, r: int) -> torch.Tensor:
    return (x << r) | ((x >> (32 - r)) & ((1 << r) - 1))


def _hash_positions(keys: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Threefry of counters (0, j), j < n, under each key: keys (B, 2) int32 -> two (B, n) int32."""
    k0, k1 = keys[:, 0:1], keys[:, 1:2]
    schedule = (k0, k1, k0 ^ k1 ^ _PARITY)
    x1 = torch.arange(n, dtype=torch.int32, device=keys.device) + k1
    x0 = torch.zeros_like(x1) + k0
    for block in range(5):
        for r in _ROTATIONS[block % 2]:
            x0 = x0 + x1
            x1 = _rotl(x1, r) ^ x0
        x0 = x0 + schedule[(block + 1) % 3]
        x1 = x1 + (schedule[(block + 2) % 3] + (block + 1))
    return x0, x1


def _words_kernel(keys: torch.Tensor, n: int) -> torch.Tensor:
    y0, y1 = _hash_positions(keys, n)
    return y0 ^ y1


def _lookup_kernel(keys: torch.Tensor, n: int, table: torch.Tensor, shift: int, mask: int) -> torch.Tensor:
    y0, y1 = _hash_positions(keys, n)
    return table[((y0 ^ y1) >> shift) & mask]


@functools.cache
def _compiled_words():
    return torch.compile(_words_kernel, dynamic=True, options=_OPTIONS)


@functools.cache
def _compiled_lookup(shift: int, mask: int):
    # shift and mask are baked in as constants so they stay immediate operands of the kernel.
    return torch.compile(functools.partial(_lookup_kernel, shift=shift, mask=mask), dynamic=True,
                         options=_OPTIONS)


def available(device: torch.device) -> bool:
    """Whether inductor can build kernels for ``device`` here (a C++ compiler, or Triton)."""
    if device.type == "cpu":
        return shutil.which("c++") is not None or shutil.which("g++") is not None
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return False
        return True
    return False


def words(keys: torch.Tensor, n: int) -> torch.Tensor:
    """XOR-folded 32-bit words of the partitionable layout: keys (B, 2) int32 -> (B, n) int32."""
    return _compiled_words()(keys, n)


def lookup(keys: torch.Tensor, n: int, table: torch.Tensor, shift: int, mask: int) -> torch.Tensor:
    """``table[(word >> shift) & mask]`` for every partitionable word: (B, 2) int32 -> (B, n)."""
    return _compiled_lookup(shift, mask)(keys, n, table)
