"""The CPU counterpart of :mod:`.threefry_kernel`: the same bulk draw as a small C function.

The source (``threefry_cpu.c``) is built and loaded by :func:`eggroll_torch.random.native.load`
(system C compiler, cached); without a compiler, :func:`library` returns None and callers use
the torch path. Float32 values are computed as XLA:CPU computes them (``variant="cpu"``) or read
from ``eggroll_torch.random``'s table (other variants, 16-bit dtypes), so they are exact.
"""
from __future__ import annotations

import ctypes
import functools
import os

import torch

from eggroll_torch.random import native
from eggroll_torch.random.float_bits import FORMATS

_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "threefry_cpu.c")
_I64 = native.I64


@functools.lru_cache(maxsize=None)
def library():
    """The loaded C function, or None when it cannot be built or loaded here."""
    return native.void_function(_SOURCE, "eggroll_pair_normals",
                                [ctypes.c_void_p, _I64, _I64, _I64, ctypes.c_uint32, _I64, _I64, _I64, ctypes.c_void_p,
                                 _I64, _I64, ctypes.c_uint32, ctypes.c_void_p, _I64, _I64, _I64, _I64])


def draw(layer_keys: torch.Tensor, true_epoch: int, table: torch.Tensor | None, out: torch.Tensor,
         row0: int = 0) -> None:
    """Fill the CPU tensor ``out`` ``(L, P, rows, cols)`` (any strides) like
    :func:`.threefry_kernel.launch_normals`; ``table`` None computes float32 values as XLA:CPU
    does. ``row0``: ``out`` holds rows ``row0 ..`` of each draw (of ``cols`` columns), so two
    calls fill a draw split across two tensors. ``library()`` must not be None."""
    keys = layer_keys.contiguous()
    table_ptr = None if table is None else table.contiguous().data_ptr()
    layers, pairs, rows, cols = out.shape
    fmt = FORMATS[out.dtype]
    fn = library()

    def work(start: int, stop: int) -> None:
        part = out[:, start:stop]
        fn(keys.data_ptr(), layers, start, stop - start, true_epoch % 2**32, row0, rows, cols, table_ptr,
           out.element_size(), fmt.shift, fmt.mask, part.data_ptr(), *out.stride())

    native.parallel(pairs, work, item_size=rows * cols * layers)
