"""noise.*: eggroll_torch.fast's bulk draws equal eggroll_torch.random's and upstream's, bit for bit.

One draw per antithetic pair; the pair's member key must be upstream's for both of its threads.
The Triton kernel is checked under Triton's interpreter in test_fast_triton_kernels.py.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from conformance.tolerances import assert_parity
from eggroll_torch import random as es_random
from eggroll_torch.fast import draw_pair_normals, pair_keys
from eggroll_torch.fast import threefry_cpu
from eggroll_torch.random.triton_support import triton_usable
from fast_support import jax_factors, jax_member_key_words, layer_key_batch

NO_COMPILER = threefry_cpu.library() is None


@pytest.mark.parametrize("noise_reuse, epoch", [(0, 7), (1, 7), (3, 7), (3, 2)])
def test_noise_pair_keys_are_upstream_member_keys(noise_reuse, epoch):
    keys = layer_key_batch(11, 2)
    got = pair_keys(keys, epoch, 3, noise_reuse)
    for layer in range(2):
        for pair in range(3):
            for thread in (2 * pair, 2 * pair + 1):
                expected = jax_member_key_words(keys[layer], epoch, thread, noise_reuse)
                assert_parity(got[layer, pair], expected, "exact", what=f"key of layer {layer}, thread {thread}")


def _layouts(layers, pairs, rows, cols, dtype):
    row_major = torch.empty(layers, pairs, rows, cols, dtype=dtype)
    col_major = torch.empty(layers, pairs, cols, rows, dtype=dtype).transpose(2, 3)
    return {"row_major": row_major, "col_major": col_major}


@pytest.mark.parametrize("kernel", [None, pytest.param("c", marks=pytest.mark.skipif(
    NO_COMPILER, reason="no C compiler here; the torch path is used instead"))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_noise_bulk_draw_equals_random_normal(kernel, dtype):
    keys = layer_key_batch(5, 3)
    expected = es_random.normal(pair_keys(keys, 4, 5, 1), (37, 3), dtype)
    for name, out in _layouts(3, 5, 37, 3, dtype).items():
        draw_pair_normals(keys, 4, out, noise_reuse=1, kernel=kernel)
        assert torch.equal(out.view(torch.int16 if dtype != torch.float32 else torch.int32),
                           expected.view(torch.int16 if dtype != torch.float32 else torch.int32)), name


@pytest.mark.parametrize("kernel", [None, pytest.param("c", marks=pytest.mark.skipif(
    NO_COMPILER, reason="no C compiler here; the torch path is used instead"))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_noise_bulk_draw_scaled_split_is_the_draw_and_its_rounded_product(kernel, dtype):
    keys = layer_key_batch(6, 2)
    whole = draw_pair_normals(keys, 3, torch.empty(2, 4, 3, 11, dtype=dtype).transpose(2, 3), noise_reuse=1,
                              kernel=kernel)
    out = torch.empty(2, 4, 3, 5, dtype=dtype).transpose(2, 3)
    scaled = torch.empty(2, 4, 3, 6, dtype=dtype).transpose(2, 3)
    draw_pair_normals(keys, 3, out, noise_reuse=1, kernel=kernel, scaled=(scaled, 5, 0.1015625))
    assert_parity(out, whole[:, :, :5], "exact", what="rows below the split")
    assert_parity(scaled, whole[:, :, 5:] * torch.full((), 0.1015625, dtype=dtype), "exact", what="scaled rows 5..")


def test_noise_bulk_draw_accepts_a_device_epoch():
    keys = layer_key_batch(2, 1)
    from_int = draw_pair_normals(keys, 9, torch.empty(1, 2, 6, 2), noise_reuse=4)
    from_tensor = draw_pair_normals(keys, torch.tensor([9], dtype=torch.int32), torch.empty(1, 2, 6, 2),
                                    noise_reuse=4)
    assert torch.equal(from_int, from_tensor)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_noise_factors_are_upstream_lora_factors(dtype):
    """A draw of ``in + out`` rows is ``[B.T; A.T]`` of upstream's get_lora_update_params."""
    rank, out_features, in_features, epoch = 3, 5, 7, 2
    keys = layer_key_batch(8, 1)
    factors = torch.empty(1, 2, rank, in_features + out_features, dtype=getattr(torch, dtype))
    draw_pair_normals(keys, epoch, factors.transpose(2, 3), noise_reuse=1)
    b_t, a_t = factors[0, :, :, :in_features], factors[0, :, :, in_features:]
    param = jnp.zeros((out_features, in_features), dtype=dtype)
    for thread in range(4):
        a, b = jax_factors(param, keys[0], epoch, thread, rank, noise_reuse=1)
        sign = 1.0 if thread % 2 == 0 else -1.0
        assert_parity(b_t[thread // 2].T, b, "exact", what=f"B of thread {thread}")
        # sigma = 1: upstream's A is the unit draw times +-1/sqrt(rank).
        scaled = (a_t[thread // 2].T.double() * sign / np.sqrt(rank)).numpy()
        assert_parity(np.asarray(scaled, dtype=np.float32).astype(a.dtype), a, "elementwise",
                      what=f"A of thread {thread}")


def test_noise_bad_input_is_rejected():
    keys = layer_key_batch(1, 2)
    with pytest.raises(TypeError, match="layer_keys"):
        draw_pair_normals(keys.to(torch.int64), 0, torch.empty(2, 1, 3, 1), noise_reuse=1)
    with pytest.raises(ValueError, match="out must have shape"):
        draw_pair_normals(keys, 0, torch.empty(3, 1, 3, 1), noise_reuse=1)
    with pytest.raises(ValueError, match="noise_reuse"):
        draw_pair_normals(keys, 0, torch.empty(2, 1, 3, 1), noise_reuse=-1)
    with pytest.raises(ValueError, match="kernel"):
        draw_pair_normals(keys, 0, torch.empty(2, 1, 3, 1), noise_reuse=1, kernel="cuda")


def test_noise_kernel_choice_is_validated():
    keys = layer_key_batch(1, 1)
    with pytest.raises(ValueError, match="float32, bfloat16 or float16"):
        draw_pair_normals(keys, 0, torch.empty(1, 1, 3, 1, dtype=torch.float64), noise_reuse=1, kernel="c")
    if not triton_usable("cpu"):
        with pytest.raises(ValueError, match="kernel='triton' cannot run"):
            draw_pair_normals(keys, 0, torch.empty(1, 1, 3, 1), noise_reuse=1, kernel="triton")
