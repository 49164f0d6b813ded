"""bits, uniform and normal of eggroll_torch.random against jax.random, bit for bit.

Every sampler takes a batch of keys; JAX's reference is ``jax.vmap`` of the single-key call.
"""
from __future__ import annotations

import jax
import numpy as np
import pytest
import torch

import eggroll_torch.random as jr
from conformance.tolerances import assert_same_bits
from eggroll_torch.random.float_bits import mantissa_index
from eggroll_torch.random.normal_tables import normal_table, normal_values
from random_support import TORCH_TO_JAX_DTYPE, jax_flags, torch_keys, xla_rounds_float16_per_op


FLOATS = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
UINTS = [torch.uint8, torch.uint16, torch.uint32, torch.uint64]
SHAPES = [(), (7,), (2, 3, 4)]


def _keys(n: int, seed: int):
    return jax.random.split(jax.random.key(seed), n)


def _jax(fn, keys, *args, partitionable=True, x64=False):
    with jax_flags(partitionable=partitionable, x64=x64):
        return np.asarray(jax.vmap(lambda k: fn(k, *args))(keys))


@pytest.mark.parametrize("partitionable", [True, False])
@pytest.mark.parametrize("dtype", UINTS, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_random_bits(shape, dtype, partitionable):
    keys = _keys(3, 7)
    expected = _jax(jax.random.bits, keys, shape, TORCH_TO_JAX_DTYPE[dtype], partitionable=partitionable,
                    x64=dtype == torch.uint64)
    got = jr.bits(torch_keys(keys), shape, dtype, partitionable=partitionable)
    assert got.dtype == dtype and got.shape == (3,) + shape
    assert_same_bits(got, expected, f"random.bits {dtype} {shape}")


@pytest.mark.parametrize("partitionable", [True, False])
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("shape", [(), (5, 3), (257,)], ids=str)
def test_random_normal(shape, dtype, partitionable):
    keys = _keys(8, 11)
    expected = _jax(jax.random.normal, keys, shape, TORCH_TO_JAX_DTYPE[dtype], partitionable=partitionable,
                    x64=dtype == torch.float64)
    got = jr.normal(torch_keys(keys), shape, dtype, partitionable=partitionable)
    assert got.dtype == dtype and got.shape == (8,) + shape
    assert_same_bits(got, expected, f"random.normal_{dtype} {shape}")


@pytest.mark.parametrize("partitionable", [True, False])
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("bounds", [(0.0, 1.0), (-0.3, 1.7), (-1e4, 3.0)], ids=str)
def test_random_uniform(bounds, dtype, partitionable):
    if dtype == torch.float16 and bounds == (-1e4, 3.0) and not xla_rounds_float16_per_op():
        pytest.skip("this host's XLA:CPU keeps float32 between fused float16 operations (avx512_fp16), so its "
                    "float16 uniform rounds once where eggroll_torch reproduces the per-operation rounding of "
                    "other hosts (docs/reference-semantics.md, trap 14)")
    keys = _keys(4, 13)
    x64 = dtype == torch.float64
    expected = _jax(jax.random.uniform, keys, (65,), TORCH_TO_JAX_DTYPE[dtype], *bounds,
                    partitionable=partitionable, x64=x64)
    got = jr.uniform(torch_keys(keys), (65,), dtype, *bounds, partitionable=partitionable)
    assert_same_bits(got, expected, f"random.uniform_{dtype} {bounds}")


def test_random_uniform_tensor_bounds():
    keys = _keys(4, 17)
    lo = np.linspace(-2, 1, 4, dtype=np.float32)[:, None]
    expected = np.asarray(jax.vmap(lambda k, a: jax.random.uniform(k, (9,), minval=a, maxval=a + 2.5))(keys, lo))
    got = jr.uniform(torch_keys(keys), (9,), torch.float32, torch.from_numpy(lo), torch.from_numpy(lo + 2.5))
    assert_same_bits(got, expected, "random.uniform with per-key tensor bounds")


def test_random_normal_population_factors():
    """One vectorized call gives every member's (a + b, r) factor matrix, as vmap over members."""
    base = jax.random.fold_in(jax.random.key(0), 4)
    tids = np.arange(0, 2**31 - 1, 2**31 // 96, dtype=np.uint32)
    member = jax.vmap(lambda t: jax.random.fold_in(base, t))(tids)
    expected = np.asarray(jax.vmap(lambda k: jax.random.normal(k, (24 + 40, 4)))(member))
    keys = jr.fold_in(jr.fold_in(jr.key(0), 4), torch.from_numpy(tids.astype(np.int64)))
    got = jr.normal(keys, (24 + 40, 4))
    assert got.shape == (len(tids), 64, 4)
    assert_same_bits(got, expected, "random.normal_float32 population factors")


def test_random_normal_large_shape():
    normal_table(torch.float32, "cpu")  # large draws read the table: make sure it is the path taken
    keys = _keys(2, 5)
    expected = _jax(jax.random.normal, keys, (8192 + 8192, 16), "float32")
    assert_same_bits(jr.normal(torch_keys(keys), (8192 + 8192, 16)), expected, "random.normal_float32 (16384, 16)")


def test_random_normal_key_batch_shapes():
    keys = jax.random.split(jax.random.key(2), (2, 3))
    expected = np.asarray(jax.vmap(jax.vmap(lambda k: jax.random.normal(k, (4,))))(keys))
    got = jr.normal(torch_keys(keys), (4,))
    assert got.shape == (2, 3, 4)
    assert_same_bits(got, expected, "random.normal_float32 with a (2, 3) key batch")


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_random_normal_table_path_equals_direct_path(variant):
    """Large draws read a table, small ones evaluate erf_inv directly: both give the same values."""
    index = mantissa_index(torch.randint(-2**31, 2**31 - 1, (4096,), dtype=torch.int32), torch.float32)
    direct = normal_values(index, torch.float32, variant)
    assert_same_bits(normal_table(torch.float32, "cpu", variant)[index.long()], direct,
                     f"random.normal_float32 table vs direct ({variant})")
