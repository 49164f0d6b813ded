"""Configurations and reductions the trainer checks share."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..adapters.trainer import TrainerConfig
from .base import TrainerCase

# lr 0 keeps the probe's weights at zero across generations, so every generation's
# perturbations are observed exactly (see probes); 32 pairs of members.
NOISE = TrainerConfig(sigma=0.05, lr=0.0, rank=4, population=64, noise_reuse=1)


def noise_case(case_id: str = "probe", **changes) -> TrainerCase:
    """A case on the noise configuration, with ``changes`` applied."""
    return TrainerCase(case_id, replace(NOISE, **changes))


def pairs(perturbations: list, name: str) -> list[np.ndarray]:
    """The even members' (each pair's first member's) perturbation of ``name``."""
    return [member[name] for member in perturbations[::2]]


def correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two arrays' entries about zero (the noise's mean is zero)."""
    x, y = np.ravel(x), np.ravel(y)
    denominator = np.sqrt(np.dot(x, x) * np.dot(y, y))
    return float(np.dot(x, y) / denominator) if denominator else 0.0
