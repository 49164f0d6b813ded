"""Correctly rounded float32/float64 arithmetic in numpy, including fused multiply-adds.

The host-side twin of :mod:`exact_arith`, used by the erf_inv emulations that fill the normal
tables: numpy runs them single-threaded and predictably, where torch's threaded CPU kernels
stall when the machine is oversubscribed. float32 ``+ - * /`` are computed in float64 and rounded
once (exact: 53 >= 2 * 24 + 2); a float32 FMA rounds its float64 sum to odd first; a float64 FMA
uses Boldo and Melquiond's emulation; square roots use the IEEE instruction behind ``np.sqrt``.
"""
from __future__ import annotations

import numpy as np

F32, F64 = np.float32, np.float64


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def round_to_odd_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a + b`` (float64) rounded to odd: an inexact sum gets its last mantissa bit forced to 1."""
    s, err = _two_sum(a, b)
    bits = s.view(np.int64)
    away = (err > 0) == (s > 0)
    fixed = np.where((err != 0) & ((bits & 1) == 0), bits + np.where(away, 1, -1), bits)
    return fixed.view(F64)


def add32(a, b) -> np.ndarray:
    return (np.asarray(a, F64) + np.asarray(b, F64)).astype(F32)


def mul32(a, b) -> np.ndarray:
    return (np.asarray(a, F64) * np.asarray(b, F64)).astype(F32)


def div32(a, b) -> np.ndarray:
    return (np.asarray(a, F64) / np.asarray(b, F64)).astype(F32)


def fma32(a, b, c) -> np.ndarray:
    """``a * b + c`` of float32 values rounded once to float32."""
    product = np.asarray(a, F64) * np.asarray(b, F64)
    product, addend = np.broadcast_arrays(product, np.asarray(c, F64))
    return round_to_odd_sum(product, addend).astype(F32)


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = a * 134217729.0
    high = c - (c - a)
    return high, a - high


def fma64(a, b, c) -> np.ndarray:
    """``a * b + c`` of float64 values rounded once (finite values, no underflow of a * b)."""
    a, b, c = np.broadcast_arrays(np.asarray(a, F64), np.asarray(b, F64), np.asarray(c, F64))
    uh = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    ul = ((ah * bh - uh) + ah * bl + al * bh) + al * bl
    th, tl = _two_sum(c, uh)
    return th + round_to_odd_sum(tl, ul)
