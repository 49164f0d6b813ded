"""Fused multiply-adds with one rounding for torch tensors on any device (used by ``uniform``).

XLA:CPU contracts multiply-adds into FMA instructions; torch has no FMA operator, so
``fma_f32`` computes ``a * b + c`` with one rounding. The product of two float32 values is exact in
float64, the float64 sum is then rounded to odd (its error is recovered exactly by TwoSum) so
that the final rounding to float32 cannot round twice. Plain ``+ - * /`` of float32 values
computed in float64 and rounded once are already correctly rounded (53 >= 2 * 24 + 2).
:mod:`exact_numpy` is the host-side twin used to build the normal tables.
"""
from __future__ import annotations

import torch


def round_to_odd_sum(p: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``p + c`` in float64 rounded to odd: inexact sums get their last mantissa bit forced to 1."""
    s = p + c
    bp = s - p
    err = (p - (s - bp)) + (c - bp)
    bits = s.view(torch.int64)
    even = (bits & 1) == 0
    inexact = err != 0
    # Moving one ulp towards the discarded error makes the last bit odd without crossing it.
    away = (err > 0) == (s > 0)
    step = torch.where(away, 1, -1)
    fixed = torch.where(inexact & even, bits + step, bits)
    return fixed.view(torch.float64)


def fma_f32(a, b, c) -> torch.Tensor:
    """``a * b + c`` with a single rounding to float32 (IEEE fusedMultiplyAdd)."""
    a64 = torch.as_tensor(a, dtype=torch.float64)
    b64 = torch.as_tensor(b, dtype=torch.float64)
    c64 = torch.as_tensor(c, dtype=torch.float64)
    return round_to_odd_sum(a64 * b64, c64).to(torch.float32)


def _two_sum(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _split(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Veltkamp split of a float64 into two halves of at most 26 significant bits."""
    c = a * 134217729.0
    high = c - (c - a)
    return high, a - high


def _two_prod(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def fma_f64(a, b, c) -> torch.Tensor:
    """``a * b + c`` with a single rounding to float64 (finite values, no underflow of a*b).

    Boldo and Melquiond's emulation: the exact product and the exact sum with ``c`` leave two
    small terms; adding those rounded to odd and then the head once, rounded to nearest, gives
    the correctly rounded result.
    """
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    c = torch.as_tensor(c, dtype=torch.float64)
    uh, ul = _two_prod(a, b)
    th, tl = _two_sum(c, uh)
    return th + round_to_odd_sum(tl, ul)
