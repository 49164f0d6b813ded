"""A kernel that only calls libdevice: the fused multiply-adds libdevice's own functions bring
into a kernel's PTX, for :func:`triton_interpreted.assert_compiles_for_sm90_without_fma` to
count against (importing this module needs ``triton``)."""
from __future__ import annotations

import triton
import triton.language as tl
from triton.language.extra.cuda import libdevice


@triton.jit
def libdevice_calls(x_ptr, out_ptr, EXP: tl.constexpr, LOG1P: tl.constexpr, BLOCK: tl.constexpr):
    """``EXP`` calls of ``expf`` and ``LOG1P`` of ``log1pf``, each on its own ``BLOCK`` values."""
    at = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + at)
    for i in tl.static_range(EXP):
        tl.store(out_ptr + i * BLOCK + at, libdevice.exp(x + i))
    for i in tl.static_range(LOG1P):
        tl.store(out_ptr + (EXP + i) * BLOCK + at, libdevice.log1p(x + i))
