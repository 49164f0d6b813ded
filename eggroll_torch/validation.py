"""Input checks shared by the functional layer and ``eggroll_torch.nn``.

Each check raises ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, bad value)
naming the argument and saying how to fix it, and returns the value in normalised form. Callers
run every check before touching any state, so a rejected call changes nothing.
"""
from __future__ import annotations

import math
import numbers

import torch

from . import tree

# Thread ids and epochs enter jax.random.fold_in as int32 (upstream's iterinfo dtype).
MAX_MEMBER_INDEX = 2**31


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_positive_real(name: str, value, *, allow_zero: bool = False) -> float:
    """A finite real number ``> 0`` (``>= 0`` with ``allow_zero``); 0-d float tensors are accepted."""
    if isinstance(value, torch.Tensor):
        if value.ndim != 0 or not value.dtype.is_floating_point:
            raise TypeError(
                f"{name} must be a real number or a 0-d float tensor; "
                f"got a {value.dtype} tensor of shape {tuple(value.shape)}"
            )
        number = float(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    else:
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}; got {number}")
    return number


def check_real(name: str, value) -> float:
    """A finite real number (a learning rate, a weight decay)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, torch.Tensor)):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite; got {number}")
    return number


def check_count(name: str, value, minimum: int) -> int:
    """An integer ``>= minimum`` (``rank >= 1``, ``group_size >= 0``, ``noise_reuse >= 0``)."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}")
    return int(value)


def _check_index_values(name: str, values: torch.Tensor) -> None:
    if values.numel() == 0:
        return
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= MAX_MEMBER_INDEX:
        raise ValueError(
            f"{name} must lie in [0, 2**31) (upstream folds them into the key as int32); "
            f"got {low if low < 0 else high}"
        )


def _index_tensor(name: str, value, check_values: bool) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
            raise TypeError(f"{name} must hold integers; got dtype {value.dtype}. Cast with .to(torch.int64)")
        if value.ndim > 1:
            raise ValueError(
                f"{name} must be a scalar or a 1-D tensor (one entry per member); got shape {tuple(value.shape)}"
            )
        if check_values:
            _check_index_values(name, value)
        return value
    if _is_int(value):
        if not 0 <= value < MAX_MEMBER_INDEX:
            raise ValueError(f"{name} must lie in [0, 2**31) (upstream folds it into the key as int32); got {value}")
        return torch.tensor(int(value), dtype=torch.int64)
    raise TypeError(f"{name} must be an int or an integer tensor; got {type(value).__name__} {value!r}")


def check_iterinfo(iterinfo, *, check_values: bool = True, name: str = "iterinfo"):
    """``(epoch, thread_id)`` for one member or ``(epochs, thread_ids)`` (1-D tensors) for a population.

    Returns ``(epochs, thread_ids, is_population)`` with both entries as integer tensors (ints
    become 0-d int64 tensors). Values must lie in ``[0, 2**31)``; for tensors that check reads
    the values (a device sync on CUDA), so hot forward paths pass ``check_values=False`` for
    CUDA tensors and rely on the check in ``do_updates``.
    """
    if not isinstance(iterinfo, (tuple, list)) or len(iterinfo) != 2:
        raise TypeError(
            f"{name} must be a pair (epoch, thread_id) of ints, or (epochs, thread_ids) of 1-D integer "
            f"tensors for a population; got {type(iterinfo).__name__}"
        )
    epochs = _index_tensor(f"{name}[0] (epoch)", iterinfo[0], check_values)
    threads = _index_tensor(f"{name}[1] (thread_id)", iterinfo[1], check_values)
    if epochs.shape != threads.shape:
        raise ValueError(
            f"{name}: epochs and thread_ids must have the same shape; got {tuple(epochs.shape)} and "
            f"{tuple(threads.shape)}. Use torch.full((N,), epoch) for the epochs of a population"
        )
    return epochs, threads, threads.ndim == 1


def check_fitnesses(
    fitnesses, population_size: int | None = None, device=None, name: str = "fitnesses"
) -> torch.Tensor:
    """A 1-D floating tensor of finite values, of length ``population_size`` on ``device``."""
    if not isinstance(fitnesses, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch tensor of shape (N,); got {type(fitnesses).__name__}. Wrap it with torch.as_tensor"
        )
    if not fitnesses.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating tensor; got dtype {fitnesses.dtype}. Cast with .float()")
    if fitnesses.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per member); got shape {tuple(fitnesses.shape)}")
    if population_size is not None and fitnesses.shape[0] != population_size:
        raise ValueError(
            f"{name} has {fitnesses.shape[0]} entries but the population (iterinfos) has "
            f"{population_size} members; pass one fitness per member"
        )
    if device is not None and fitnesses.device != torch.device(device):
        raise ValueError(
            f"{name} is on {fitnesses.device} but the params are on device {device}; "
            f"move it with .to({str(device)!r})"
        )
    if not _all_finite(fitnesses):
        bad = fitnesses[~torch.isfinite(fitnesses)][0].item()
        raise ValueError(
            f"{name} must be finite; found {bad}. Replace NaN/inf scores (e.g. with torch.nan_to_num) before the update"
        )
    return fitnesses


def _all_finite(values: torch.Tensor) -> bool:
    """Whether every element is finite, read once from the device.

    A NaN or an infinity among the terms makes the sum non-finite, so a finite sum settles it
    with one reduction; only a non-finite sum (which finite terms also give when they overflow)
    pays for the elementwise test.
    """
    return math.isfinite(values.sum().item()) or bool(torch.isfinite(values).all())


def check_raw_scores(raw_scores, group_size: int, name: str = "raw_scores") -> torch.Tensor:
    """Finite floating scores ``(N,)``; with ``group_size > 0``, ``N`` must be a multiple of it."""
    scores = check_fitnesses(raw_scores, name=name)
    if group_size > 0 and scores.shape[0] % group_size:
        raise ValueError(
            f"{name} has {scores.shape[0]} entries, not a multiple of group_size={group_size}; "
            "use a population size divisible by group_size"
        )
    return scores


def params_device(params):
    """The device shared by all tensor leaves of ``params`` (``None`` for a tree without tensors)."""
    devices = {leaf.device for leaf in tree.leaves(params) if isinstance(leaf, torch.Tensor)}
    if len(devices) > 1:
        raise ValueError(f"params: all leaves must be on one device; found {sorted(map(str, devices))}")
    return devices.pop() if devices else None


def check_same_structure(reference, other, name: str, reference_name: str = "params") -> list:
    """``other``'s subtrees at the leaves of ``reference`` (raises if the nesting differs)."""
    return tree.flatten_up_to(tree.structure(reference), other, name=f"{name} (must match {reference_name})")


def check_keys_tree(params, base_keys, name: str = "base_keys") -> list:
    """One ``torch.uint32`` key tensor ``(*scan, 2)`` per leaf of ``params``."""
    keys = check_same_structure(params, base_keys, name)
    for leaf_key in keys:
        if not isinstance(leaf_key, torch.Tensor) or leaf_key.dtype != torch.uint32 or leaf_key.shape[-1:] != (2,):
            if isinstance(leaf_key, torch.Tensor):
                got = f"{leaf_key.dtype} {tuple(leaf_key.shape)}"
            else:
                got = type(leaf_key).__name__
            raise TypeError(
                f"{name}: every leaf must be a torch.uint32 key tensor of shape (..., 2) from "
                "simple_es_tree_key; got " + got
            )
    return keys


def check_es_map(params, es_map, name: str = "es_map") -> list:
    """One es class (0 PARAM, 1 MM_PARAM, 2 EMB_PARAM, 3 EXCLUDED) per leaf of ``params``."""
    classes = check_same_structure(params, es_map, name)
    for value in classes:
        if not _is_int(value) or not 0 <= value <= 3:
            raise ValueError(
                f"{name}: leaves must be 0 (PARAM), 1 (MM_PARAM), 2 (EMB_PARAM) or 3 (EXCLUDED); got {value!r}"
            )
    return classes
