"""Helpers for comparing the torch functional layer with jax_reference: conversions and test data."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from eggroll_torch import random as es_random

CUDA = pytest.param("cuda", marks=pytest.mark.cuda)
DEVICES = ["cpu", CUDA]

DTYPES = {"float32": (torch.float32, jnp.float32), "bfloat16": (torch.bfloat16, jnp.bfloat16),
          "float16": (torch.float16, jnp.float16), "float64": (torch.float64, jnp.float64)}


def to_jax(value):
    """A torch tensor (any float dtype, or uint32 key words) as a JAX array of the same values."""
    if not isinstance(value, torch.Tensor):
        return value
    host = value.detach().cpu()
    if host.dtype == torch.bfloat16:
        return jnp.asarray(host.float().numpy()).astype(jnp.bfloat16)
    return jnp.asarray(host.numpy())


def to_torch(value, device="cpu"):
    """A JAX array as a torch tensor with the same dtype and values."""
    array = np.asarray(value)
    if array.dtype.name == "bfloat16":
        return torch.from_numpy(array.astype(np.float32)).to(device=device, dtype=torch.bfloat16)
    return torch.from_numpy(array.copy()).to(device)


def jax_key(words: torch.Tensor):
    """The JAX key array with the same words as a torch key batch ``(*batch, 2)``."""
    return jax.random.wrap_key_data(jnp.asarray(words.cpu().numpy()))


def torch_key_tree(jax_keys, device="cpu"):
    """A JAX key tree as torch uint32 word tensors."""
    return jax.tree.map(lambda k: to_torch(jax.random.key_data(k), device), jax_keys)


def population(n: int, epoch: int = 0, first_thread: int = 0, device="cpu"):
    """``(epochs, thread_ids)`` for ``n`` members: torch int64 tensors and the JAX int32 pair."""
    epochs = np.full(n, epoch, dtype=np.int32)
    threads = np.arange(first_thread, first_thread + n, dtype=np.int32)
    torch_pair = (torch.from_numpy(epochs).to(device), torch.from_numpy(threads).to(device))
    return torch_pair, (jnp.asarray(epochs), jnp.asarray(threads))


def random_tensor(seed: int, shape, dtype: torch.dtype, device="cpu", scale: float = 1.0) -> torch.Tensor:
    """Reproducible test data (not the code under test): numpy normals cast to ``dtype``."""
    values = np.random.default_rng(seed).standard_normal(shape) * scale
    return torch.from_numpy(values.astype(np.float32)).to(device=device, dtype=dtype)


def key(seed: int, device="cpu") -> torch.Tensor:
    return es_random.key(seed, device=device)


def slow(*values, id=None):  # noqa: A002 (pytest's name)
    """A parametrize case run only by ``make test-slow`` (the exhaustive matrix)."""
    return pytest.param(*values, marks=pytest.mark.slow, id=id)


def matrix(default, *axes):
    """All combinations of ``axes`` as parametrize cases; those not in ``default`` are slow."""
    import itertools

    cases = []
    for combo in itertools.product(*axes):
        cases.append(combo if combo in default else slow(*combo))
    return cases
