"""gumbel and categorical of eggroll_torch.random against jax.random, bit for bit.

Every sampler takes a batch of keys; JAX's reference is ``jax.vmap`` of the single-key call.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import eggroll_torch.random as jr
from conformance.tolerances import assert_same_bits
from eggroll_torch.random.float_bits import FORMATS
from eggroll_torch.random.gumbel import xla_log_f32
from eggroll_torch.random.uniform import bound, uniform_from_words
from random_support import TORCH_TO_JAX_DTYPE, enumerating_prng, jax_flags, torch_keys

DTYPES = [torch.float32, torch.bfloat16]


def _jax(fn, keys, *args, partitionable=True):
    with jax_flags(partitionable=partitionable):
        return np.asarray(jax.vmap(lambda k: fn(k, *args))(keys))


@pytest.mark.parametrize("partitionable", [True, False])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(), (7,), (2, 3, 4), (1024,)], ids=str)
def test_random_gumbel(shape, dtype, partitionable):
    keys = jax.random.split(jax.random.key(11), 16)
    expected = _jax(jax.random.gumbel, keys, shape, TORCH_TO_JAX_DTYPE[dtype], partitionable=partitionable)
    got = jr.gumbel(torch_keys(keys), shape, dtype, partitionable=partitionable)
    assert got.shape == (16, *shape) and got.dtype == dtype
    assert_same_bits(got, expected, f"random.gumbel {dtype} {shape}")


@pytest.mark.parametrize("dtype", [torch.bfloat16, pytest.param(torch.float32, marks=pytest.mark.slow)], ids=str)
def test_random_gumbel_all_values(dtype):
    """A default-mode Gumbel is a function of the uniform's mantissa: every one of them, against
    jax.random.gumbel compiled by XLA:CPU (with a PRNG enumerating the mantissas)."""
    fmt = FORMATS[dtype]
    key = jax.random.key(0, impl=enumerating_prng(fmt.shift))
    expected = np.asarray(jax.jit(lambda k: jax.random.gumbel(k, (1 << fmt.mantissa,),
                                                             TORCH_TO_JAX_DTYPE[dtype]))(key))
    index = torch.arange(1 << fmt.mantissa, dtype=torch.int32) << fmt.shift
    tiny = float(jnp.finfo(jnp.float32).tiny)
    u = uniform_from_words(index, dtype, bound(tiny, dtype, "cpu", "minval"), bound(1.0, dtype, "cpu", "maxval"))
    got = -xla_log_f32(-xla_log_f32(u.float()).to(dtype).float()).to(dtype)
    assert_same_bits(got, expected, f"random.gumbel {dtype}: every value")


def test_xla_log_f32_matches_jnp_log():
    """The float32 logarithm over a spread of magnitudes, subnormal-free, against jnp.log."""
    x = np.float32(2.0) ** np.random.default_rng(0).uniform(-126, 127, 1 << 16).astype(np.float32)
    expected = np.asarray(jax.jit(jnp.log)(x))
    assert_same_bits(xla_log_f32(torch.from_numpy(x)), expected, "xla_log_f32")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("logits_shape,axis,shape", [
    ((5,), -1, None),
    ((3, 5), -1, None),
    ((3, 5), -1, (7, 3)),
    ((3, 5), 0, None),
    ((3, 5), 0, (2, 5)),
    ((2, 3, 4), 1, (6, 2, 4)),
    ((4,), 0, (256,)),
], ids=str)
def test_random_categorical(logits_shape, axis, shape, dtype):
    keys = jax.random.split(jax.random.key(5), 32)
    logits = (jax.random.normal(jax.random.key(6), logits_shape) * 2.0).astype(TORCH_TO_JAX_DTYPE[dtype])
    expected = _jax(lambda k: jax.random.categorical(k, logits, axis=axis, shape=shape), keys)
    torch_logits = torch.from_numpy(np.asarray(logits).astype(np.float32)).to(dtype)
    got = jr.categorical(torch_keys(keys), torch_logits, axis, shape)
    assert got.dtype == torch.int32
    assert_same_bits(got, expected, f"random.categorical {logits_shape} axis {axis} shape {shape}")


def test_random_categorical_many_draws_follow_probabilities():
    """Law check on top of the bit checks: 2**16 draws land in proportion to softmax(logits)."""
    logits = torch.tensor([0.0, 1.0, -1.0, 2.0])
    draws = jr.categorical(jr.key(3), logits, shape=(1 << 16,))
    freq = torch.bincount(draws.long(), minlength=4).double() / draws.numel()
    assert torch.allclose(freq, torch.softmax(logits.double(), 0), atol=0.01)


def test_random_gumbel_rejects_bad_input():
    with pytest.raises(ValueError, match="float32 and bfloat16"):
        jr.gumbel(jr.key(0), (3,), torch.float16)
    with pytest.raises(TypeError):
        jr.gumbel(torch.zeros(2), (3,))
    with pytest.raises(ValueError, match="broadcast-compatible"):
        jr.categorical(jr.key(0), torch.zeros(3, 4), shape=(2,))
    with pytest.raises(ValueError, match="out of range"):
        jr.categorical(jr.key(0), torch.zeros(3, 4), axis=2)
    with pytest.raises(TypeError):
        jr.categorical(jr.key(0), [0.0, 1.0])
