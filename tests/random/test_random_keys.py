"""Keys, fold_in and split of eggroll_torch.random against jax.random, word for word."""
from __future__ import annotations

import jax
import numpy as np
import pytest
import torch

import eggroll_torch.random as jr
from conformance.tolerances import assert_same_bits
from random_support import jax_flags, torch_keys


SEEDS = [0, 1, 5, -1, -5, 2**31 - 1, 2**31, -2**31, -2**31 - 1, 2**32 - 1, 2**32, 2**32 + 5,
         2**40 + 3, -2**40 - 7, 2**62 + 11, 2**63 - 1, -2**63]
TYPED_SEEDS = [np.int32(-3), np.uint32(4000000000), np.int64(-1), np.int64(2**40 + 9),
               np.uint64(2**63 + 7), np.int16(-3), np.uint8(200)]


@pytest.mark.parametrize("x64", [False, True])
@pytest.mark.parametrize("ctor", ["key", "PRNGKey"])
def test_random_key_seeds(ctor, x64):
    with jax_flags(x64=x64):
        expected = [np.asarray(jax.random.key_data(jax.random.key(s))) if ctor == "key"
                    else np.asarray(getattr(jax.random, ctor)(s)) for s in SEEDS + TYPED_SEEDS]
    got = [getattr(jr, ctor)(s, x64=x64) for s in SEEDS + TYPED_SEEDS]
    for seed, g, e in zip(SEEDS + TYPED_SEEDS, got, expected):
        assert g.dtype == torch.uint32 and g.shape == (2,)
        assert_same_bits(g, e, f"random.key {ctor}({seed!r}) x64={x64}")


def test_random_key_global_x64_setting():
    jr.set_enable_x64(True)
    try:
        got = jr.key(-1)
    finally:
        jr.set_enable_x64(False)
    with jax_flags(x64=True):
        assert_same_bits(got, np.asarray(jax.random.PRNGKey(-1)), "random.key under set_enable_x64(True)")
    assert_same_bits(jr.key(-1), np.asarray(jax.random.PRNGKey(-1)), "random.key after resetting x64")


def test_random_key_tensor_seed():
    with jax_flags(x64=True):
        expected = np.asarray(jax.random.PRNGKey(np.int64(-2**40)))
    assert_same_bits(jr.key(torch.tensor(-2**40), x64=True), expected, "random.key of an int64 tensor")


def test_random_fold_in_chain():
    data = [0, 1, 7, 255, 65535, 2**31 - 1, 2**31, 2**32 - 1, 123456789, 3000000000]
    rng = np.random.default_rng(0)
    data += [int(d) for d in rng.integers(0, 2**32, 20)]
    key, tkey = jax.random.key(0), jr.key(0)
    for step, d in enumerate(data):
        key, tkey = jax.random.fold_in(key, d), jr.fold_in(tkey, d)
        assert_same_bits(tkey, np.asarray(jax.random.key_data(key)), f"random.fold_in chain step {step} ({d})")


def test_random_fold_in_thread_ids_broadcast():
    """Population keys fold_in(fold_in(k, epoch), thread) for thread ids up to 2**31 - 1."""
    base = jax.random.split(jax.random.key(3), 4)
    tids = np.array([0, 1, 2, 1023, 2**20 + 1, 2**30, 2**31 - 2, 2**31 - 1], dtype=np.uint32)
    expected = jax.vmap(lambda k: jax.vmap(
        lambda t: jax.random.fold_in(jax.random.fold_in(k, 5), t))(tids))(base)
    keys = jr.fold_in(torch_keys(base), 5)[:, None, :]
    got = jr.fold_in(keys, torch.from_numpy(tids.astype(np.int64)))
    assert got.shape == (4, len(tids), 2)
    assert_same_bits(got, np.asarray(jax.random.key_data(expected)), "random.fold_in thread ids")


def test_random_fold_in_integer_tensor_wraps_like_jax():
    data = np.array([-1, -2**31, 2**33 + 3, 7], dtype=np.int64)
    key = jax.random.key(9)
    expected = np.stack([np.asarray(jax.random.key_data(jax.random.fold_in(key, d))) for d in data])
    assert_same_bits(jr.fold_in(jr.key(9), torch.from_numpy(data)), expected, "random.fold_in int64 data")


@pytest.mark.parametrize("partitionable", [True, False])
@pytest.mark.parametrize("num", [1, 2, 3, 7, (2, 3), (4, 1, 2)])
def test_random_split(num, partitionable):
    keys = jax.random.split(jax.random.key(42), 3)
    with jax_flags(partitionable=partitionable):
        expected = jax.vmap(lambda k: jax.random.split(k, num))(keys)
    got = jr.split(torch_keys(keys), num, partitionable=partitionable)
    assert_same_bits(got, np.asarray(jax.random.key_data(expected)), f"random.split num={num}")


def test_random_split_global_partitionable_setting():
    jr.set_threefry_partitionable(False)
    try:
        got = jr.split(jr.key(1), 5)
    finally:
        jr.set_threefry_partitionable(True)
    with jax_flags(partitionable=False):
        expected = np.asarray(jax.random.key_data(jax.random.split(jax.random.key(1), 5)))
    assert_same_bits(got, expected, "random.split under set_threefry_partitionable(False)")


def test_random_wrap_key_data_round_trip():
    words = np.array(jax.random.key_data(jax.random.split(jax.random.key(5), (2, 3))))
    keys = jr.wrap_key_data(words)
    assert keys.shape == (2, 3, 2) and keys.dtype == torch.uint32
    assert_same_bits(jr.key_data(keys), words, "random.wrap_key_data")
    words[0, 0, 0] ^= 1
    assert not np.array_equal(keys.numpy(), words), "wrap_key_data must copy, not alias, numpy input"
