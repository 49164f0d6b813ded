"""JAX's threefry PRNG in PyTorch, word for word and bit for bit.

Keys are ``torch.uint32`` tensors of shape ``(*batch, 2)`` (what ``jax.random.key_data``
returns); every function maps over the leading batch and returns ``batch + shape`` on the keys'
device. Results equal jax 0.10.2's on x86-64 XLA:CPU, on torch CPU and CUDA alike;
``normal(..., variant="gpu")`` gives XLA:GPU's float32 values instead.

The two JAX flags that change random words, ``jax_threefry_partitionable`` and
``jax_enable_x64``, have process-wide defaults (:func:`set_threefry_partitionable`,
:func:`set_enable_x64`) and per-call overrides (``partitionable=``, ``x64=``);
:func:`set_backend` chooses how draws are computed without changing their values.
"""
from .bits import bits
from .config import set_backend, set_enable_x64, set_threefry_partitionable
from .gumbel import categorical, gumbel
from .keys import PRNGKey, fold_in, key, key_data, split, wrap_key_data
from .normal import normal
from .uniform import uniform

__all__ = [
    "PRNGKey",
    "bits",
    "categorical",
    "fold_in",
    "gumbel",
    "key",
    "key_data",
    "normal",
    "set_backend",
    "set_enable_x64",
    "set_threefry_partitionable",
    "split",
    "uniform",
    "wrap_key_data",
]
