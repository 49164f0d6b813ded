"""The CPU counterpart of :mod:`.member_kernels`: :func:`.member_ops.member_layer_norm`'s population
rule for float32 as a small C function.

In torch ops the population's LayerNorm is a normalisation pass, then the per-member weights and
biases built as ``(N, D)`` tensors, then a broadcast multiply-add over the activations again; the
C loop (``member_norm_cpu.c``) normalises each row and applies its member's affine while the row
is in cache. It is at least as accurate as ``F.layer_norm``: the row's mean and variance are
accumulated in double. The source is built and loaded by
:func:`eggroll_torch.random.native.load` (system C compiler, cached); without a compiler,
:func:`library` returns None and callers use torch ops.
"""
from __future__ import annotations

import ctypes
import functools
import os

import torch

from eggroll_torch.random import native

_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "member_norm_cpu.c")
_I64 = native.I64


@functools.lru_cache(maxsize=None)
def library():
    """The loaded C function, or None when it cannot be built or loaded here."""
    return native.void_function(_SOURCE, "eggroll_member_layer_norm",
                                [ctypes.c_void_p, ctypes.c_void_p, _I64, _I64, _I64, _I64, ctypes.c_void_p,
                                 ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_double, ctypes.c_void_p])


def member_layer_norm_rows(flat: torch.Tensor, rows_per_member: int, w: torch.Tensor | None,
                           w_noise: torch.Tensor | None, b: torch.Tensor | None, b_noise: torch.Tensor | None,
                           eps: float) -> torch.Tensor:
    """Like :func:`.member_kernels.member_layer_norm_rows`, on float32 CPU tensors: ``flat``
    ``(M, D)`` contiguous, member ``m`` owning rows ``m * rows_per_member ..``, of pair ``m // 2``
    and sign ``+1`` for even ``m``, ``-1`` for odd; ``w``, ``b`` ``(D,)`` or None; ``w_noise``,
    ``b_noise`` ``(P, D)`` sigma-scaled pair noise or None (the shared value for every member).
    Returns a new ``(M, D)`` tensor. :func:`library` must not be None."""
    rows, width = flat.shape
    out = torch.empty_like(flat)
    params = [None if t is None else t.contiguous() for t in (w, w_noise, b, b_noise)]
    pointers = [None if t is None else t.data_ptr() for t in params]
    fn = library()

    def work(start: int, stop: int) -> None:
        scratch = torch.empty(2 * width, dtype=torch.float32)  # per range: the ranges run concurrently
        fn(flat.data_ptr(), out.data_ptr(), start, stop - start, width, rows_per_member, *pointers, eps,
           scratch.data_ptr())

    native.parallel(rows, work, item_size=width)
    return out
