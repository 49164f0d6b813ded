"""Argument checks of the nn trainer: each names the argument and the fix, and runs before any
state changes."""
from __future__ import annotations

import math
import numbers
import operator

import torch


def positive_float(name: str, value) -> float:
    """``value`` as a float, raising unless it is a finite real number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive real number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}; ES needs a positive {name}")
    return float(value)


def finite_float(name: str, value) -> float:
    """``value`` as a float, raising unless it is a finite real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def count(name: str, value, minimum: int) -> int:
    """``value`` as an int, raising unless it is an integer (not a bool) ``>= minimum``."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got a bool ({value})")
    try:
        result = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}") from None
    if result < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {result}")
    return result


def group_size(value, population_size: int) -> int:
    """``group_size`` as an int: 0 (one global normalization) or a divisor of ``population_size``."""
    size = count("group_size", value, 0)
    if size and population_size % size:
        raise ValueError(
            f"group_size={size} does not divide population_size={population_size}; fitnesses are "
            f"normalized in groups of group_size members, so pick a divisor of {population_size} "
            "(or 0 for one global normalization)"
        )
    return size


def raw_fitness(value, population_size: int, device: torch.device) -> torch.Tensor:
    """The raw fitness tensor ``(N,)``: floating, on ``device``, one finite value per member.

    Synchronizes with the device once (the finiteness check).
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"fitness must be a torch.Tensor of shape (population_size,) = ({population_size},), "
            f"got {type(value).__name__}; return torch.as_tensor(scores) from the fitness function"
        )
    if not value.is_floating_point():
        raise TypeError(f"fitness must be a floating-point tensor, got dtype {value.dtype}; cast it with .float()")
    if value.ndim != 1 or value.shape[0] != population_size:
        raise ValueError(
            f"fitness has shape {tuple(value.shape)} but the population has {population_size} members; "
            f"return one raw score per member, shape ({population_size},)"
        )
    if value.device != device:
        raise ValueError(
            f"fitness is on {value.device} but the parameters are on {device}; move it with "
            f".to({str(device)!r})"
        )
    finite = torch.isfinite(value)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten()[:5].tolist()
        raise ValueError(
            f"fitness has non-finite values (NaN or inf) for members {bad}; fix the fitness "
            "function or replace them (e.g. torch.nan_to_num) before the update"
        )
    return value
