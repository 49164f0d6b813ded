"""Shared helpers of the eggroll_torch.random tests: JAX flag scopes, key conversion, enumerating PRNGs."""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from eggroll_torch.random import wrap_key_data

TORCH_TO_JAX_DTYPE = {
    torch.float32: "float32",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.float64: "float64",
    torch.uint8: "uint8",
    torch.uint16: "uint16",
    torch.uint32: "uint32",
    torch.uint64: "uint64",
}


@contextlib.contextmanager
def backend(name: str):
    """Run eggroll_torch.random with backend ``name`` (see ``set_backend``), then restore it."""
    from eggroll_torch.random import config, set_backend

    previous = config.backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def enumerating_prng(shift: int):
    """A JAX PRNG implementation whose ``bit_width``-bit draws are ``m << shift`` for m = 0, 1,
    2, ...: with ``shift`` = the dtype's ``FloatFormat.shift``, draw ``m`` uses mantissa ``m``, so
    one ``jax.random.normal`` call enumerates every value the dtype's normal can take."""
    import jax.numpy as jnp
    from jax._src.random import prng

    def random_bits(key, bit_width, shape):
        words = jnp.arange(int(np.prod(shape)), dtype=jnp.uint32) << shift
        return words.astype(jnp.dtype(f"uint{bit_width}")).reshape(shape)

    return prng.PRNGImpl(
        key_shape=(2,),
        seed=lambda seed: jnp.zeros(2, jnp.uint32),
        split=lambda key, shape: jnp.zeros(shape + (2,), jnp.uint32),
        random_bits=random_bits,
        fold_in=lambda key, data: key,
        name=f"enumerate_mantissas_{shift}",
        tag=f"em{shift}",
    )


@contextlib.contextmanager
def jax_flags(*, partitionable: bool = True, x64: bool = False):
    """Run JAX with ``jax_threefry_partitionable`` and ``jax_enable_x64`` set, then restore both."""
    import jax

    with jax.threefry_partitionable(partitionable), jax.enable_x64(x64):
        yield


def torch_keys(jax_keys) -> torch.Tensor:
    """Key words of JAX keys (typed or legacy uint32) as an eggroll_torch key batch."""
    import jax

    if jax.dtypes.issubdtype(jax_keys.dtype, jax.dtypes.prng_key):
        jax_keys = jax.random.key_data(jax_keys)
    return wrap_key_data(np.asarray(jax_keys))


def xla_rounds_float16_per_op() -> bool:
    """Whether this host's XLA:CPU rounds every float16 operation of a fused ``a * b + c`` to
    float16 (most hosts) rather than keeping float32 in between (hosts with ``avx512_fp16``).

    The operands are chosen so that the two differ: ``0.9697265625 * 10000 = 9697.265625`` rounds
    to 9696 in float16, and ``9696 - 10000 = -304`` while ``9697.27 - 10000`` rounds to -302.75.
    """
    import jax
    import jax.numpy as jnp

    a, b, c = (jnp.asarray(v, jnp.float16) for v in (0.9697265625, 10000.0, -10000.0))
    return float(jax.jit(lambda a, b, c: a * b + c)(a, b, c)) == -304.0
