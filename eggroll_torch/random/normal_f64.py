"""Float64 normals: computed per draw (52 mantissa bits are too many for a table)."""
from __future__ import annotations

import math

import torch

from .float_bits import mantissa_index, one_to_two
from .xla_cpu_f64 import erf_inv_f64

_LOWEST = -(1.0 - 2.0**-53)


def normal_f64_from_words(words: torch.Tensor) -> torch.Tensor:
    """``sqrt(2) * erf_inv(u)`` with u uniform in ``(nextafter(-1, 0), 1)`` from 64-bit words."""
    unit = one_to_two(mantissa_index(words, torch.float64), torch.float64) - 1.0
    u = torch.clamp_min(unit * 2.0 + _LOWEST, _LOWEST)
    return erf_inv_f64(u) * math.sqrt(2.0)
