"""Every value jax.random.normal can return, for float16, bfloat16 and float32.

A normal of these dtypes is a function of the mantissa bits of its draw. JAX is run with a
stand-in PRNG whose random bits enumerate all mantissas in order, so ``jax.random.normal`` (its
real uniform and erf_inv code, compiled by XLA:CPU) yields the whole table; eggroll_torch must
give the same bits for each mantissa.
"""
from __future__ import annotations

import jax
import numpy as np
import pytest
import torch

from conformance.tolerances import assert_same_bits
from eggroll_torch.random.float_bits import FORMATS
from eggroll_torch.random.normal_tables import normal_table
from eggroll_torch.random.uniform import bound, uniform_from_words
from random_support import TORCH_TO_JAX_DTYPE, enumerating_prng


def _jax_table(dtype: torch.dtype) -> np.ndarray:
    fmt = FORMATS[dtype]
    key = jax.random.key(0, impl=enumerating_prng(fmt.shift))
    draw = jax.jit(lambda k: jax.random.normal(k, (1 << fmt.mantissa,), TORCH_TO_JAX_DTYPE[dtype]))
    with jax.default_device(jax.devices("cpu")[0]):
        return np.asarray(draw(key))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_random_normal_all_half_values(dtype):
    name = "normal_float16" if dtype == torch.float16 else "normal_bfloat16"
    assert_same_bits(normal_table(dtype, "cpu"), _jax_table(dtype), f"random.{name}: every value")


def test_random_normal_all_float32_values():
    assert_same_bits(normal_table(torch.float32, "cpu"), _jax_table(torch.float32),
                     "random.normal_float32: all 2**23 mantissas")


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
def test_random_uniform_all_values(dtype):
    """uniform on [0, 1) is a function of the mantissa too: all of them, against JAX."""
    fmt = FORMATS[dtype]
    key = jax.random.key(0, impl=enumerating_prng(fmt.shift))
    expected = np.asarray(jax.jit(lambda k: jax.random.uniform(
        k, (1 << fmt.mantissa,), TORCH_TO_JAX_DTYPE[dtype], -0.3, 1.7))(key))
    index = torch.arange(1 << fmt.mantissa, dtype=torch.int32) << fmt.shift
    got = uniform_from_words(index, dtype, bound(-0.3, dtype, "cpu", "minval"), bound(1.7, dtype, "cpu", "maxval"))
    assert_same_bits(got, expected, f"random.uniform_{dtype}: every value")
