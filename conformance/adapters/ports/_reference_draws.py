"""Route the reference's Gaussian draws into a port's own ``torch.randn`` calls.

A port with its own RNG seeds a ``torch.Generator`` for each member and draws with
``torch.randn``. To check everything except the RNG itself, :func:`routed_draws` swaps the port
module's ``torch`` for a proxy for the duration of a call: ``torch.Generator(...)`` returns a
:class:`SeedRecorder`, and ``torch.randn(size, generator=recorder, dtype=...)`` returns the draw a
``resolve(seed, size, dtype)`` callback picks for the recorded seed. The port still decides which
(epoch, member) it draws for, how it slices and scales the draw and which sign a member gets;
only the Gaussian bits come from the reference, as
``normal(fold_in(fold_in(leaf_key, epoch), pair), size, dtype)`` (:class:`ReferenceDraws`).
"""
from __future__ import annotations

import contextlib
from types import ModuleType
from typing import Callable

import numpy as np
import torch

from ._torch_trees import to_torch


class SeedRecorder:
    """Stands in for ``torch.Generator``: remembers the last ``manual_seed`` and nothing else."""

    def __init__(self, *args, **kwargs):
        self.seed: int | None = None

    def manual_seed(self, seed) -> "SeedRecorder":
        self.seed = int(seed)
        return self


def _size(size: tuple) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)):
        return tuple(int(s) for s in size[0])
    return tuple(int(s) for s in size)


class _TorchProxy:
    """``torch`` with ``Generator`` and ``randn`` replaced; every other name is torch's own."""

    def __init__(self, resolve: Callable[[int, tuple, torch.dtype], torch.Tensor]):
        self._resolve = resolve
        self.Generator = SeedRecorder

    def __getattr__(self, name):
        return getattr(torch, name)

    def randn(self, *size, generator=None, dtype=None, device=None, **kwargs):
        if not isinstance(generator, SeedRecorder) or generator.seed is None:
            raise RuntimeError("the port drew noise without a seeded generator, so no reference draw "
                               "can be routed to it; this adapter needs updating for the port's version")
        return self._resolve(generator.seed, _size(size), dtype or torch.get_default_dtype())


@contextlib.contextmanager
def routed_draws(module: ModuleType, resolve: Callable[[int, tuple, torch.dtype], torch.Tensor]):
    """Within the block, ``module``'s ``torch.randn`` draws come from ``resolve(seed, size, dtype)``."""
    original = module.torch
    module.torch = _TorchProxy(resolve)
    try:
        yield
    finally:
        module.torch = original


_JAX_DTYPES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


class ReferenceDraws:
    """The reference's standard-normal draws of one leaf, keyed by (epoch, pair).

    ``key`` is the leaf's threefry key as two ``uint32`` words. ``draw(epoch, pair, size, dtype)``
    is ``jax.random.normal(fold_in(fold_in(key, epoch), pair), size, dtype)``; draws for
    ``pairs`` consecutive pair indices are made in one vectorised call and cached.
    """

    def __init__(self, key: np.ndarray, pairs: int):
        if pairs < 1:
            raise ValueError(f"pairs must be >= 1, got {pairs}")
        self._key = np.asarray(key, np.uint32)
        self._pairs = int(pairs)
        self._cache: dict = {}

    def draw(self, epoch: int, pair: int, size: tuple, dtype: torch.dtype) -> torch.Tensor:
        if not 0 <= pair < self._pairs:
            raise ValueError(f"pair {pair} outside the {self._pairs} pairs these draws were made for")
        if dtype not in _JAX_DTYPES:
            raise ValueError(f"reference draws exist for {sorted(map(str, _JAX_DTYPES))}, not {dtype}")
        block = (int(epoch), tuple(size), dtype)
        if block not in self._cache:
            self._cache[block] = self._block(int(epoch), tuple(size), _JAX_DTYPES[dtype])
        return self._cache[block][pair].clone()

    def _block(self, epoch: int, size: tuple, dtype: str) -> torch.Tensor:
        import jax
        import jax.numpy as jnp

        epoch_key = jax.random.fold_in(jax.random.wrap_key_data(jnp.asarray(self._key)), epoch)
        keys = jax.vmap(lambda i: jax.random.fold_in(epoch_key, i))(jnp.arange(self._pairs, dtype=jnp.uint32))
        draws = jax.vmap(lambda k: jax.random.normal(k, size, jnp.dtype(dtype)))(keys)
        return to_torch(np.asarray(draws))
