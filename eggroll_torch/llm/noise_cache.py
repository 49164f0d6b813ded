"""Drawing each member's noise once per generation instead of once per token.

A member's perturbation depends on its key, epoch and thread id only, yet the model's forward
draws it through the noiser at every call, and generation calls the forward once per token.
:func:`caching_noiser` subclasses a noiser so that, while a cache is open, the noise seam
(``full_noise`` / ``lora_noise``, which the forward and the update both draw through) returns the
first draw for the same parameter and key again. The values are the noiser's own, bit for bit.
"""
from __future__ import annotations

import contextlib

import torch

__all__ = ["caching_noiser"]


def _identity(param: torch.Tensor, key: torch.Tensor) -> tuple:
    # Within one generation the params and keys (and the views the model takes of stacked layers)
    # stay alive and unchanged, so their addresses and shapes name them.
    return (param.data_ptr(), tuple(param.shape), param.dtype, key.data_ptr(), tuple(key.shape))


def caching_noiser(NOISER):
    """A subclass of ``NOISER`` whose noise draws are memoised inside ``with cls.noise_cache():``.

    Open the cache only around calls that share ``frozen_noiser_params``, ``noiser_params`` and
    ``iterinfo`` (one generation); it is emptied when the block exits. Outside a block the class
    behaves exactly as ``NOISER``.
    """
    store: dict | None = None

    class Cached(NOISER):
        @classmethod
        def full_noise(cls, frozen_noiser_params, base_sigma, iterinfo, param, key):
            if store is None:
                return super().full_noise(frozen_noiser_params, base_sigma, iterinfo, param, key)
            name = ("full",) + _identity(param, key)
            if name not in store:
                store[name] = super().full_noise(frozen_noiser_params, base_sigma, iterinfo, param, key)
            return store[name]

        @classmethod
        def lora_noise(cls, frozen_noiser_params, base_sigma, iterinfo, param, key):
            if store is None:
                return super().lora_noise(frozen_noiser_params, base_sigma, iterinfo, param, key)
            name = ("lora",) + _identity(param, key)
            if name not in store:
                store[name] = super().lora_noise(frozen_noiser_params, base_sigma, iterinfo, param, key)
            return store[name]

        @classmethod
        @contextlib.contextmanager
        def noise_cache(cls):
            nonlocal store
            if store is not None:
                raise RuntimeError(f"{cls.__name__}.noise_cache() is already open; it does not nest")
            store = {}
            try:
                yield
            finally:
                store = None

    Cached.__name__ = Cached.__qualname__ = f"Cached{NOISER.__name__}"
    return Cached
