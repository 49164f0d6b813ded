"""Float64 normals: computed per draw (52 mantissa bits are too many for a table)."""
from __future__ import annotations

import math

import numpy as np
import torch

from .float_bits import mantissa_index
from .xla_cpu_f64 import erf_inv_f64

_LOWEST = -(1.0 - 2.0**-53)


def normal_f64_from_words(words: torch.Tensor) -> torch.Tensor:
    """``sqrt(2) * erf_inv(u)`` with u uniform in ``(nextafter(-1, 0), 1)``, from int64 words.

    Computed on the host (the emulation calls the C library's ``log``), returned on words' device.
    """
    index = mantissa_index(words, torch.float64).cpu().numpy().ravel()
    unit = (index | np.int64(0x3FF0000000000000)).view(np.float64) - 1.0
    u = np.maximum(unit * 2.0 + _LOWEST, _LOWEST)
    out = erf_inv_f64(u) * math.sqrt(2.0)
    return torch.from_numpy(out).reshape(words.shape).to(words.device)
