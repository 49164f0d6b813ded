"""keys.* and model.*: per-leaf keys, initial weights (exact) and MLP forwards against
jax_reference."""
from __future__ import annotations

import jax
import numpy as np
import pytest
import torch

import jax_reference.models.common as jcommon
import jax_reference.noiser as jnoiser
from conformance.tolerances import assert_parity, assert_tree_parity
from eggroll_torch import noiser as tnoiser
from eggroll_torch import random as es_random
from eggroll_torch import tree
from eggroll_torch.models import common
from parity_support import DEVICES, jax_key, key, population, random_tensor, to_jax


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_model_mlp_init_exact(dtype):
    """A torch MLP starts from the JAX MLP's weights bit for bit."""
    k = es_random.fold_in(key(0), 0)
    t = common.MLP.rand_init(k, in_dim=3, out_dim=2, hidden_dims=[5, 4], use_bias=True, activation="relu",
                             dtype=dtype)
    j = jcommon.MLP.rand_init(jax_key(k), in_dim=3, out_dim=2, hidden_dims=[5, 4], use_bias=True,
                              activation="relu", dtype=dtype)
    assert_tree_parity(t.params, j.params, "exact", what="MLP params")
    assert t.es_map == j.es_map and t.scan_map == j.scan_map and t.frozen_params == j.frozen_params


@pytest.mark.parametrize("cls", ["TMM", "Embedding", "MM"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_model_layer_init_exact(cls, dtype):
    t = getattr(common, cls).rand_init(key(4), 6, 3, dtype)
    j = getattr(jcommon, cls).rand_init(jax_key(key(4)), 6, 3, dtype)
    assert_parity(t.params, np.asarray(j.params), "exact")
    assert t.es_map == j.es_map


def test_keys_tree_exact_with_scan_map():
    """One key per leaf in sorted-key order; scanned leaves split again along their axes."""
    params = {"b": {"w": torch.zeros(2, 3, 4)}, "a": torch.zeros(5), "c": [torch.zeros(3, 2), torch.zeros(1)]}
    scan_map = {"b": {"w": (0, 1)}, "a": (), "c": [(0,), ()]}
    got = common.simple_es_tree_key(params, key(9), scan_map)
    expected = jcommon.simple_es_tree_key(jax.tree.map(to_jax, params), jax_key(key(9)), scan_map)
    assert got["b"]["w"].shape == (2, 3, 2) and got["c"][0].shape == (3, 2)
    for g, e in zip(tree.leaves(got), jax.tree.leaves(expected)):
        assert_parity(g, np.asarray(jax.random.key_data(e)), "exact", what="keys")


def test_keys_leaf_order_is_sorted():
    params = {"10": torch.zeros(1), "2": torch.zeros(1), "bias": torch.zeros(1)}
    keys = common.simple_es_tree_key(params, key(1), jax.tree.map(lambda _: (), {"10": 0, "2": 0, "bias": 0}))
    split = es_random.split(key(1), 3)
    assert torch.equal(keys["10"], split[0])
    assert torch.equal(keys["2"], split[1])
    assert torch.equal(keys["bias"], split[2])


@pytest.mark.parametrize("name", ["eggroll", "open_es", "sparse"])
@pytest.mark.parametrize("activation", ["relu", "silu", "pqn"])
def test_model_mlp_forward(name, activation):
    k = key(2)
    t = common.MLP.rand_init(k, in_dim=3, out_dim=2, hidden_dims=[6], use_bias=True, activation=activation,
                             dtype="float32")
    j = jcommon.MLP.rand_init(jax_key(k), in_dim=3, out_dim=2, hidden_dims=[6], use_bias=True,
                              activation=activation, dtype="float32")
    tkeys = common.simple_es_tree_key(t.params, key(3), t.scan_map)
    jkeys = jcommon.simple_es_tree_key(j.params, jax_key(key(3)), j.scan_map)
    tf, tn = tnoiser.all_noisers[name].init_noiser(t.params, 0.2, 0.1, rank=2)
    jf, jn = jnoiser.all_noisers[name].init_noiser(j.params, 0.2, 0.1, rank=2)
    torch_pop, jax_pop = population(6, epoch=1)
    x = random_tensor(4, (6, 3), torch.float32)
    got = common.MLP.forward(tnoiser.all_noisers[name], tf, tn, t.frozen_params, t.params, tkeys, torch_pop, x)
    member = lambda it, xm: jcommon.MLP.forward(jnoiser.all_noisers[name], jf, jn, j.frozen_params, j.params,  # noqa: E731
                                                jkeys, it, xm)
    expected = np.asarray(jax.vmap(member)(jax_pop, to_jax(x)))
    assert_parity(got, expected, "reduction", what=f"MLP {name} {activation}")
    plain = common.MLP.forward(tnoiser.all_noisers[name], tf, tn, t.frozen_params, t.params, tkeys, None, x)
    expected_plain = np.asarray(jcommon.MLP.forward(jnoiser.all_noisers[name], jf, jn, j.frozen_params, j.params,
                                                    jkeys, None, to_jax(x)))
    assert_parity(plain, expected_plain, "reduction", what="MLP without noise")


def test_model_linear_bias_broadcasts_over_member_batches():
    """A population input ``(N, B, in)`` gets each member's noisy bias on all its B rows."""
    t = common.Linear.rand_init(key(5), 3, 4, True, "float32")
    params = {"weight": t.params["weight"], "bias": random_tensor(6, (4,), torch.float32)}
    keys = common.simple_es_tree_key(params, key(6), t.scan_map)
    frozen, nparams = tnoiser.eggroll.EggRoll.init_noiser(params, 0.2, 0.1, rank=2)
    pop, _ = population(5)
    x = random_tensor(7, (5, 2, 3), torch.float32)
    out = common.Linear.forward(tnoiser.eggroll.EggRoll, frozen, nparams, None, params, keys, pop, x)
    rows = common.Linear.forward(tnoiser.eggroll.EggRoll, frozen, nparams, None, params, keys, pop, x[:, 1])
    assert out.shape == (5, 2, 4)
    assert_parity(out[:, 1], rows, "float32_other_ops", what="rows of a member batch")


@pytest.mark.parametrize("device", DEVICES)
def test_model_follows_key_device(device):
    t = common.MLP.rand_init(key(0, device), in_dim=2, out_dim=1, hidden_dims=[3], use_bias=True,
                             activation="relu", dtype=torch.float32)
    assert all(leaf.device.type == device for leaf in tree.leaves(t.params))
