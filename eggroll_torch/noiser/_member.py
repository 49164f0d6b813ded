"""Which key and which sign each population member uses for one parameter.

A member is ``(epoch, thread_id)``. Threads ``2i`` and ``2i + 1`` are an antithetic pair: one
key, ``fold_in(fold_in(key, noise_epoch), thread_id // 2)``, and opposite signs. ``iterinfo``
names one member (two ints, or two 0-d tensors) or a population (two 1-D tensors of length N);
shapes below write ``M`` for the member shape, ``()`` or ``(N,)``.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .. import random
from ..numerics import default_float_dtype, sqrt
from ..validation import check_iterinfo


class Members(NamedTuple):
    """``epochs`` and ``thread_ids`` as int64 tensors of the member shape ``M``."""

    epochs: torch.Tensor
    thread_ids: torch.Tensor
    population: bool

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.thread_ids.shape)


def as_members(iterinfo, device) -> Members:
    """Validate ``iterinfo`` and move it to ``device``.

    Values are range-checked here unless that would read a CUDA tensor back (``do_updates``
    checks them on every device before changing anything).
    """
    parts = iterinfo if isinstance(iterinfo, (tuple, list)) else ()
    on_host = all(not isinstance(v, torch.Tensor) or v.device.type == "cpu" for v in parts)
    epochs, threads, population = check_iterinfo(iterinfo, check_values=on_host)
    return Members(
        epochs.to(device=device, dtype=torch.int64),
        threads.to(device=device, dtype=torch.int64),
        population,
    )


def noise_epoch(noise_reuse: int, epochs: torch.Tensor) -> torch.Tensor:
    """Epoch folded into the key: 0 always when ``noise_reuse == 0`` (noise never changes), else
    ``epoch // noise_reuse`` (fresh noise every ``noise_reuse`` epochs)."""
    if noise_reuse == 0:
        return torch.zeros_like(epochs)
    return torch.div(epochs, noise_reuse, rounding_mode="floor")


def member_key(noise_reuse: int, members: Members, key: torch.Tensor) -> torch.Tensor:
    """Each member's key ``fold_in(fold_in(key, noise epoch), thread_id // 2)``: ``(*S, *M, 2)``
    for a parameter key ``(*S, 2)``.

    ``S`` is empty for an ordinary parameter and the stacked-layer axes for a scanned one.
    """
    lead = key.shape[:-1]
    expanded = key.to(members.thread_ids.device).reshape(*lead, *([1] * len(members.shape)), 2)
    epoch_keys = random.fold_in(expanded, noise_epoch(noise_reuse, members.epochs))
    return random.fold_in(epoch_keys, torch.div(members.thread_ids, 2, rounding_mode="floor"))


def scalar(value, param_dtype: torch.dtype, device) -> torch.Tensor:
    """A Python or tensor scalar in the precision JAX evaluates scalar expressions in.

    float32 (float64 for float64 params, which need JAX's x64 mode where scalars are float64).
    """
    dtype = default_float_dtype(param_dtype)
    if isinstance(value, torch.Tensor):
        return value.to(dtype=dtype, device=device)
    return torch.full((), value, dtype=dtype, device=device)


def lora_sigma(sigma, rank: int, param_dtype: torch.dtype, device) -> torch.Tensor:
    """``sigma / sqrt(rank)``, the scale folded into ``A``, rounded as upstream computes it."""
    return scalar(sigma, param_dtype, device) / sqrt(scalar(rank, param_dtype, device))


def antithetic_sigma(base_sigma, members: Members, dtype: torch.dtype) -> torch.Tensor:
    """``+base_sigma`` for even threads, ``-base_sigma`` for odd ones: shape ``M``, in ``dtype``.

    The scalar keeps its float32 (float64) value until it meets the noise, then is rounded once
    to the noise's ``dtype``, as JAX's weakly typed scalar is.
    """
    device = members.thread_ids.device
    value = scalar(base_sigma, dtype, device)
    signed = torch.where(members.thread_ids % 2 == 0, value, -value)
    return signed.to(dtype)


def broadcast_members(values: torch.Tensor, trailing: int) -> torch.Tensor:
    """``values`` of shape ``M`` with ``trailing`` size-1 axes appended (to scale per-member noise)."""
    return values.reshape(values.shape + (1,) * trailing)
