"""Shared helpers of the eggroll_torch.fast tests: JAX-side member keys and factor draws."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import torch

from eggroll_torch import random as es_random
from jax_reference.noiser.eggroll import get_lora_update_params


def jax_key(words: torch.Tensor):
    """The JAX key with the same words as a torch key ``(2,)``."""
    return jax.random.wrap_key_data(jnp.asarray(words.cpu().numpy()))


def layer_key_batch(seed: int, layers: int) -> torch.Tensor:
    """``(L, 2)`` uint32 keys derived from ``seed``."""
    return es_random.split(es_random.key(seed), layers)


def jax_member_key_words(key_words: torch.Tensor, epoch: int, thread: int, noise_reuse: int) -> np.ndarray:
    """Words of upstream's member key for ``(epoch, thread)``, from its definition:
    ``fold_in(fold_in(key, 0 if noise_reuse == 0 else epoch // noise_reuse), thread // 2)``."""
    true_epoch = 0 if noise_reuse == 0 else epoch // noise_reuse
    key = jax.random.fold_in(jax.random.fold_in(jax_key(key_words), true_epoch), thread // 2)
    return np.asarray(jax.random.key_data(key))


def jax_factors(param, key_words: torch.Tensor, epoch: int, thread: int, rank: int, noise_reuse: int,
                sigma: float = 1.0):
    """Upstream's ``(A, B)`` of one member for ``param`` (a JAX array) at ``sigma / sqrt(rank)``."""
    frozen = {"noise_reuse": noise_reuse, "rank": rank}
    base = jnp.float32(sigma) / jnp.sqrt(rank)
    return get_lora_update_params(frozen, base, (epoch, thread), param, jax_key(key_words))
