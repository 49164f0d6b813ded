"""noise.*: every member's noise equals jax_reference's bit for bit (kind ``exact``).

The JAX side is jax_reference's per-member function vmapped over the population, exactly as
upstream's update draws it; the torch side draws the whole population in one call.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_reference.noiser as jnoiser
from conformance.tolerances import assert_parity
from eggroll_torch import noiser as tnoiser
from parity_support import DEVICES, jax_key, key, matrix, population, to_jax

SIGMA = 0.2
LOW_RANK = ["eggroll", "eggrollbs", "alteggroll"]


def _init(name, param_t, rank, noise_reuse, group_size=0):
    options = dict(rank=rank, noise_reuse=noise_reuse, group_size=group_size)
    jf, jn = jnoiser.all_noisers[name].init_noiser(to_jax(param_t), SIGMA, 0.1, **options)
    tf, tn = tnoiser.all_noisers[name].init_noiser(param_t, SIGMA, 0.1, **options)
    return (jf, jn), (tf, tn)


def _jax_draw(name, fn_name, frozen, sigma, jax_pop, param_t, key_t):
    module = __import__(f"jax_reference.noiser.{jnoiser.all_noisers[name].__module__.rsplit('.', 1)[1]}",
                        fromlist=["x"])
    fn = partial(getattr(module, fn_name), frozen)
    return jax.vmap(fn, in_axes=(None, 0, None, None))(sigma, jax_pop, to_jax(param_t), jax_key(key_t))


def _torch_module(name):
    return __import__(tnoiser.all_noisers[name].__module__, fromlist=["x"])


F32, BF16, F16 = torch.float32, torch.bfloat16, torch.float16
REUSE = [(0, 5), (1, 5), (3, 7)]
DEFAULT = ({("eggroll", dtype, reuse) for dtype in (F32, BF16, F16) for reuse in REUSE}
           | {(name, dtype, (1, 5)) for name in LOW_RANK for dtype in (F32, BF16, F16)})


@pytest.mark.parametrize("name, dtype, reuse", matrix(DEFAULT, LOW_RANK, [F32, BF16, F16], REUSE))
def test_noise_lora_factors_exact(name, dtype, reuse):
    noise_reuse, epoch = reuse
    param = torch.zeros((6, 4), dtype=dtype)
    rank = 3
    (jf, jn), (tf, tn) = _init(name, param, rank, noise_reuse, group_size=4 if name == "eggrollbs" else 0)
    k = key(11)
    torch_pop, jax_pop = population(8, epoch=epoch, first_thread=3)
    A_j, B_j = _jax_draw(name, "get_lora_update_params", jf, jn["sigma"] / jnp.sqrt(jf["rank"]), jax_pop, param, k)
    sigma = tnoiser.lora_sigma(tn["sigma"], rank, dtype, "cpu")
    A_t, B_t = _torch_module(name).get_lora_update_params(tf, sigma, torch_pop, param, k)
    assert A_t.shape == (8, 6, rank) and B_t.shape == (8, 4, rank)
    assert_parity(A_t, np.asarray(A_j), "exact", what="A")
    assert_parity(B_t, np.asarray(B_j), "exact", what="B")


@pytest.mark.parametrize("name", ["eggroll", "open_es", "eggrollbs", "sparse"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_noise_full_exact(name, dtype):
    param = torch.zeros((3, 5), dtype=dtype)
    (jf, jn), (tf, tn) = _init(name, param, 1, 2, group_size=4 if name == "eggrollbs" else 0)
    k = key(5)
    torch_pop, jax_pop = population(6, epoch=4)
    expected = _jax_draw(name, "get_nonlora_update_params", jf, jn["sigma"], jax_pop, param, k)
    got = _torch_module(name).get_nonlora_update_params(tf, tn["sigma"], torch_pop, param, k)
    assert_parity(got, np.asarray(expected), "exact", what="full noise")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(5, 7), (9, 2)])
def test_noise_sparse_exact(dtype, shape):
    param = torch.zeros(shape, dtype=dtype)
    (jf, jn), (tf, tn) = _init("sparse", param, 1, 1)
    k = key(2)
    torch_pop, jax_pop = population(6, epoch=3)
    values_j, a_j, b_j = _jax_draw("sparse", "get_sparse_update_params", jf, jn["sigma"], jax_pop, param, k)
    values_t, a_t, b_t = tnoiser.sparse.get_sparse_update_params(tf, tn["sigma"], torch_pop, param, k)
    assert_parity(values_t, np.asarray(values_j), "exact", what="values")
    assert_parity(a_t, np.asarray(a_j), "exact", what="idx_a")
    assert_parity(b_t, np.asarray(b_j), "exact", what="idx_b")


def test_noise_reuse_blocks():
    """noise_reuse=3: epochs 0-2 share noise, epoch 3 differs; noise_reuse=0 never changes."""
    param = torch.zeros((4, 4))
    draw = tnoiser.eggroll.get_nonlora_update_params
    k = key(1)
    frozen3, _ = tnoiser.eggroll.EggRoll.init_noiser(param, SIGMA, 0.1, noise_reuse=3)
    frozen0, _ = tnoiser.eggroll.EggRoll.init_noiser(param, SIGMA, 0.1, noise_reuse=0)
    by_epoch3 = [draw(frozen3, SIGMA, (e, 0), param, k) for e in range(4)]
    assert torch.equal(by_epoch3[0], by_epoch3[2]) and not torch.equal(by_epoch3[2], by_epoch3[3])
    assert torch.equal(draw(frozen0, SIGMA, (0, 0), param, k), draw(frozen0, SIGMA, (9, 0), param, k))


def test_noise_antithetic_pairs():
    """Threads 2i and 2i+1 draw the same factors with opposite signs."""
    param = torch.zeros((5, 3))
    frozen, nparams = tnoiser.eggroll.EggRoll.init_noiser(param, SIGMA, 0.1, rank=2)
    A, B = tnoiser.eggroll.get_lora_update_params(frozen, 0.1, (torch.zeros(4, dtype=torch.int64), torch.arange(4)),
                                                  param, key(3))
    assert torch.equal(A[0], -A[1]) and torch.equal(B[0], B[1]) and not torch.equal(B[0], B[2])


@pytest.mark.parametrize("device", DEVICES)
def test_noise_population_matches_single_member(device):
    """Member n of a population call equals the single-member call (epoch, thread n)."""
    param = torch.zeros((6, 4), device=device)
    frozen, _ = tnoiser.eggroll.EggRoll.init_noiser(param, SIGMA, 0.1, rank=2, noise_reuse=1)
    pop, _ = population(5, epoch=2, device=device)
    A, B = tnoiser.eggroll.get_lora_update_params(frozen, 0.1, pop, param, key(4, device))
    for n in range(5):
        a, b = tnoiser.eggroll.get_lora_update_params(frozen, 0.1, (2, n), param, key(4, device))
        assert torch.equal(A[n], a) and torch.equal(B[n], b)
