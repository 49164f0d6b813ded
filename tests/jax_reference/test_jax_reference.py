"""jax_reference's documented behaviours, each checked against an independent derivation.

Expected values come from numpy (float64) formulas or from direct ``jax.random`` calls on keys
derived here by hand, never from jax_reference itself. Parity goes through the project's
tolerance table (``conformance.tolerances``).
"""
import numpy as np
import optax
import pytest

import jax
import jax.numpy as jnp
from conformance.tolerances import assert_parity, dtype_name
from jax_reference.models import common
from jax_reference.noiser import all_noisers
from jax_reference.noiser.alteggroll import EggRoll as AltEggRoll
from jax_reference.noiser.eggroll import EggRoll, get_lora_update_params, get_nonlora_update_params
from jax_reference.noiser.eggroll_baseline_subtraction import EggRollBS
from jax_reference.noiser.eggroll_baseline_subtraction import get_lora_update_params as bs_lora
from jax_reference.noiser.open_es import OpenES
from jax_reference.noiser.sparse import Sparse, get_sparse_update_params

N = 8
SIGMA = 0.3
LR = 0.1


def check(got, expected, kind, what="arrays"):
    """``assert_parity`` at the precision ``got`` was computed in (expected values are float64)."""
    return assert_parity(got, expected, kind, dtype_name(got), what=what)


def member_key(leaf_key, epoch, thread, noise_reuse):
    """The documented member key, derived by hand."""
    true_epoch = 0 if noise_reuse == 0 else epoch // noise_reuse
    return jax.random.fold_in(jax.random.fold_in(leaf_key, true_epoch), thread // 2)


def member_normal(leaf_key, epoch, thread, noise_reuse, shape):
    return np.asarray(jax.random.normal(member_key(leaf_key, epoch, thread, noise_reuse), shape), np.float64)


def sign_of(thread):
    return 1.0 if thread % 2 == 0 else -1.0


@pytest.fixture(scope="module")
def population():
    """A small model: matrix, bias, embedding and excluded leaves, with fitnesses for N members."""
    k = jax.random.split(jax.random.key(42), 6)
    params = {
        "w": jax.random.normal(k[0], (4, 3)),
        "b": jax.random.normal(k[1], (4,)),
        "e": jax.random.normal(k[2], (5, 2)),
        "x": jax.random.normal(k[3], (2,)),
    }
    es_map = {"w": common.MM_PARAM, "b": common.PARAM, "e": common.EMB_PARAM, "x": common.EXCLUDED}
    scan_map = {name: () for name in params}
    es_key = jax.random.key(7)
    keys = common.simple_es_tree_key(params, es_key, scan_map)
    fitness = jax.random.normal(k[4], (N,))
    iterinfo = (jnp.full(N, 2, dtype=jnp.int32), jnp.arange(N))
    # jax.tree.flatten sorts dict keys: b, e, w, x.
    leaf_keys = dict(zip(["b", "e", "w", "x"], jax.random.split(es_key, 4)))
    return params, es_map, keys, fitness, iterinfo, leaf_keys


def sgd_step(noiser, population, sigma=SIGMA, rank=2, noise_reuse=1, **kwargs):
    params, es_map, keys, fitness, iterinfo, _ = population
    frozen, nparams = noiser.init_noiser(params, sigma, LR, rank=rank, noise_reuse=noise_reuse, **kwargs)
    return noiser.do_updates(frozen, nparams, params, keys, fitness, iterinfo, es_map)[1]


def expected_lowrank_gradient(leaf_key, shape, fitness, epoch, rank, sigma, noise_reuse):
    """sum_n f_n A_n B_n^T / N with B = L[:b], A = L[b:] * (+-sigma / sqrt(rank))."""
    a, b = shape
    total = np.zeros(shape)
    for n, f in enumerate(np.asarray(fitness, np.float64)):
        draw = member_normal(leaf_key, epoch, n, noise_reuse, (a + b, rank))
        A = draw[b:] * sign_of(n) * sigma / np.sqrt(rank)
        total += f * A @ draw[:b].T
    return total / len(fitness)


# ---------------------------------------------------------------- fitness shaping


def test_normalization_zscore_population_variance():
    raw = jax.random.normal(jax.random.key(1), (16,)) * 3.0 + 1.0
    frozen, nparams = EggRoll.init_noiser({}, SIGMA, LR)
    got = EggRoll.convert_fitnesses(frozen, nparams, raw)
    r = np.asarray(raw, np.float64)
    check(got, (r - r.mean()) / np.sqrt(r.var(ddof=0) + 1e-5), "reduction")
    with pytest.raises(AssertionError):  # torch's default (ddof=1) is a different answer
        check(got, (r - r.mean()) / np.sqrt(r.var(ddof=1) + 1e-5), "reduction")


def test_normalization_constant_fitness_gives_zeros():
    frozen, nparams = EggRoll.init_noiser({}, SIGMA, LR)
    got = np.asarray(EggRoll.convert_fitnesses(frozen, nparams, jnp.full((8,), 3.25)))
    assert np.all(np.isfinite(got)) and np.all(got == 0.0)


def test_normalization_group_mean_global_variance():
    raw = jax.random.normal(jax.random.key(2), (12,)) * 2.0
    frozen, nparams = EggRoll.init_noiser({}, SIGMA, LR, group_size=4)
    got = EggRoll.convert_fitnesses(frozen, nparams, raw)
    r = np.asarray(raw, np.float64)
    groups = r.reshape(3, 4)
    expected = (groups - groups.mean(axis=1, keepdims=True)) / np.sqrt(r.var() + 1e-5)
    check(got, expected.ravel(), "reduction")
    per_group = (groups - groups.mean(axis=1, keepdims=True)) / np.sqrt(groups.var(axis=1, keepdims=True) + 1e-5)
    with pytest.raises(AssertionError):
        check(got, per_group.ravel(), "reduction")


def test_normalization_eggrollbs_returns_group_size_values():
    Q, G = 3, 4
    raw = jax.random.normal(jax.random.key(3), (Q * G,))
    frozen, nparams = EggRollBS.init_noiser({}, SIGMA, LR, group_size=G)
    got = EggRollBS.convert_fitnesses(frozen, nparams, raw)
    assert got.shape == (G,)
    S = np.asarray(raw, np.float64).reshape(Q, G)
    Z = (S - S[:, :1]) / (S.std(axis=1, keepdims=True) + 1e-8)
    Z[:, :2] = 0.0
    check(got, Z.mean(axis=0), "reduction")


# ---------------------------------------------------------------- noise


def test_noise_lora_factor_slicing():
    param = jnp.zeros((5, 3), jnp.bfloat16)
    key = jax.random.key(11)
    frozen = {"noise_reuse": 3, "rank": 4}
    for epoch, thread in [(0, 0), (4, 5), (7, 2)]:
        A, B = get_lora_update_params(frozen, SIGMA, (epoch, thread), param, key)
        draw = jax.random.normal(member_key(key, epoch, thread, 3), (8, 4), dtype=jnp.bfloat16)
        assert A.dtype == B.dtype == jnp.bfloat16 and A.shape == (5, 4) and B.shape == (3, 4)
        check(B, draw[:3], "exact")
        check(A, np.asarray(draw[3:], np.float64) * sign_of(thread) * SIGMA, "elementwise")


def test_noise_antithetic_pairs():
    param = jnp.zeros((4, 3))
    key = jax.random.key(12)
    frozen = {"noise_reuse": 1, "rank": 2}
    for i in range(3):
        A0, B0 = get_lora_update_params(frozen, SIGMA, (1, 2 * i), param, key)
        A1, B1 = get_lora_update_params(frozen, SIGMA, (1, 2 * i + 1), param, key)
        check(B1, B0, "exact")
        check(A1, -np.asarray(A0), "exact")
        n0 = get_nonlora_update_params(frozen, SIGMA, (1, 2 * i), param, key)
        n1 = get_nonlora_update_params(frozen, SIGMA, (1, 2 * i + 1), param, key)
        check(n1, -np.asarray(n0), "exact")
    A2, _ = get_lora_update_params(frozen, SIGMA, (1, 2), param, key)
    assert not np.allclose(np.abs(A2), np.abs(A0))


@pytest.mark.parametrize("noise_reuse,blocks", [
    (0, [0, 0, 0, 0, 0, 0, 0]),
    (1, [0, 1, 2, 3, 4, 5, 6]),
    (3, [0, 0, 0, 1, 1, 1, 2]),
])
def test_noise_reuse_blocks(noise_reuse, blocks):
    param = jnp.zeros((6,))
    key = jax.random.key(13)
    frozen = {"noise_reuse": noise_reuse}
    draws = [np.asarray(get_nonlora_update_params(frozen, 1.0, (epoch, 4), param, key)) for epoch in range(7)]
    for epoch, block in enumerate(blocks):
        for other, other_block in enumerate(blocks):
            assert np.array_equal(draws[epoch], draws[other]) == (block == other_block), (epoch, other)
        check(draws[epoch], jax.random.normal(member_key(key, epoch, 4, noise_reuse), (6,)), "exact")


def test_noise_eggrollbs_baseline_members_unperturbed():
    param = jnp.zeros((3, 2))
    frozen = {"noise_reuse": 0, "rank": 2, "group_size": 4}
    for thread in range(8):
        A, B = bs_lora(frozen, SIGMA, (0, thread), param, jax.random.key(14))
        assert np.any(np.asarray(A) != 0) == (thread % 4 >= 2)


def test_noise_sparse_index_draw():
    a, b = 3, 5
    param = jnp.zeros((a, b))
    key = jax.random.key(15)
    frozen = {"noise_reuse": 2}
    values, rows, cols = get_sparse_update_params(frozen, SIGMA, (5, 3), param, key)
    k = max(a, b)
    assert values.shape == rows.shape == cols.shape == (k,)
    index_key, value_key = jax.random.split(member_key(key, 5, 3, 2), 2)
    flat = np.floor(np.asarray(jax.random.uniform(index_key, (k,))) * (a * b)).astype(np.int32)
    check(rows, flat // b, "exact")
    check(cols, flat % b, "exact")
    check(values, -SIGMA * np.asarray(jax.random.normal(value_key, (k,)), np.float64), "elementwise")


# ---------------------------------------------------------------- forward


def test_forward_lowrank_do_mm():
    W = jax.random.normal(jax.random.key(16), (4, 3))
    x = jax.random.normal(jax.random.key(17), (5, 3))
    key = jax.random.key(18)
    frozen, nparams = EggRoll.init_noiser({}, SIGMA, LR, rank=2, noise_reuse=1)
    got = EggRoll.do_mm(frozen, nparams, W, key, (3, 1), x)
    draw = member_normal(key, 3, 1, 1, (7, 2))
    perturbed = np.asarray(W, np.float64) + (-SIGMA / np.sqrt(2)) * draw[3:] @ draw[:3].T
    check(got, np.asarray(x, np.float64) @ perturbed.T, "reduction")
    check(EggRoll.do_mm(frozen, nparams, W, key, None, x), np.asarray(x, np.float64) @ np.asarray(W, np.float64).T,
                  "reduction")


def test_forward_open_es_full_noise():
    W = jax.random.normal(jax.random.key(19), (4, 3))
    x = jax.random.normal(jax.random.key(20), (3,))
    key = jax.random.key(21)
    frozen, nparams = OpenES.init_noiser({}, SIGMA, LR)
    got = OpenES.do_mm(frozen, nparams, W, key, (9, 2), x)
    perturbed = np.asarray(W, np.float64) + SIGMA * member_normal(key, 9, 2, 0, (4, 3))
    check(got, perturbed @ np.asarray(x, np.float64), "reduction")


# ---------------------------------------------------------------- update


def test_update_formula_minus_sqrt_n(population):
    params, _, _, fitness, _, leaf_keys = population
    new = sgd_step(EggRoll, population)
    g_w = expected_lowrank_gradient(leaf_keys["w"], (4, 3), fitness, 2, 2, SIGMA, 1)
    # The optimizer sees -(g * sqrt(N)); sgd subtracts lr times it.
    check(new["w"], np.asarray(params["w"], np.float64) + LR * np.sqrt(N) * g_w, "reduction")
    noise = np.stack([SIGMA * sign_of(n) * member_normal(leaf_keys["b"], 2, n, 1, (4,)) for n in range(N)])
    g_b = (np.asarray(fitness, np.float64)[:, None] * noise).mean(axis=0)
    check(new["b"], np.asarray(params["b"], np.float64) + LR * np.sqrt(N) * g_b, "reduction")


def test_update_embedding_and_excluded_unchanged(population):
    params = population[0]
    for name in ("eggroll", "open_es", "alteggroll", "sparse"):
        new = sgd_step(all_noisers[name], population)
        check(new["e"], params["e"], "exact")
        check(new["x"], params["x"], "exact")


def test_update_scales_with_sigma(population):
    """The step grows WITH sigma (no division by sigma): doubling sigma doubles it."""
    p = np.asarray(population[0]["w"], np.float64)
    step = np.asarray(sgd_step(EggRoll, population)["w"], np.float64) - p
    check(sgd_step(EggRoll, population, sigma=2 * SIGMA)["w"], p + 2.0 * step, "reduction")


def test_update_batched_equals_plain(population):
    params, es_map, keys, fitness, iterinfo, _ = population
    twin = {**params, "w2": params["w"] * 0.5, "b2": params["b"] + 1.0}
    twin_map = {**es_map, "w2": common.MM_PARAM, "b2": common.PARAM}
    twin_keys = common.simple_es_tree_key(twin, jax.random.key(8), {n: () for n in twin})
    results = []
    for batched in (False, True):
        frozen, nparams = EggRoll.init_noiser(twin, SIGMA, LR, rank=3, use_batched_update=batched, solver=optax.adam)
        results.append(EggRoll.do_updates(frozen, nparams, twin, twin_keys, fitness, iterinfo, twin_map)[1])
    for name in twin:
        check(results[1][name], results[0][name], "reduction", what=name)


def test_update_alteggroll_sign(population):
    params, _, _, fitness, _, leaf_keys = population
    new = sgd_step(AltEggRoll, population, rank=2)
    total = np.zeros((4, 3))
    for n, f in enumerate(np.asarray(fitness, np.float64)):
        draw = member_normal(leaf_keys["w"], 2, n, 1, (7, 2))
        total += (SIGMA * f / np.sqrt(2)) * (sign_of(n) * np.sign(draw[3:])) @ np.sign(draw[:3]).T
    check(new["w"], np.asarray(params["w"], np.float64) + LR * np.sqrt(N) * total / N, "reduction")


def test_update_sparse_scatter_mean(population):
    params, _, _, fitness, _, leaf_keys = population
    new = sgd_step(Sparse, population)
    a, b = 4, 3
    dense = np.zeros((N, a, b))
    for n in range(N):
        index_key, value_key = jax.random.split(member_key(leaf_keys["w"], 2, n, 1), 2)
        flat = np.floor(np.asarray(jax.random.uniform(index_key, (a,))) * (a * b)).astype(int)
        values = SIGMA * sign_of(n) * np.asarray(jax.random.normal(value_key, (a,)), np.float64)
        np.add.at(dense[n], (flat // b, flat % b), float(fitness[n]) * values)
    g = dense.mean(axis=0) * (max(a, b) / (a * b))
    check(new["w"], np.asarray(params["w"], np.float64) + LR * np.sqrt(N) * g, "reduction")


def test_optimizer_adamw_default_weight_decay(population):
    params, es_map, keys, _, iterinfo, _ = population
    frozen, nparams = EggRoll.init_noiser(params, SIGMA, LR, solver=optax.adamw)
    _, new = EggRoll.do_updates(frozen, nparams, params, keys, jnp.zeros(N), iterinfo, es_map)
    for name in params:  # zero gradient: only the decoupled decay 1e-4 moves the leaf, every leaf
        p = np.asarray(params[name], np.float64)
        check(new[name], p - LR * 1e-4 * p, "elementwise", what=name)


# ---------------------------------------------------------------- keys


def test_keys_flatten_order_sorted():
    params = {"2": {"w": jnp.zeros((2, 2))}, "10": {"w": jnp.zeros((2, 2)), "b": jnp.zeros(2)}}
    base = jax.random.key(30)
    keys = common.simple_es_tree_key(params, base, {"2": {"w": ()}, "10": {"w": (), "b": ()}})
    split = jax.random.key_data(jax.random.split(base, 3))
    # sorted string keys: "10" < "2"; inside "10": "b" < "w"
    for (outer, inner), row in [(("10", "b"), 0), (("10", "w"), 1), (("2", "w"), 2)]:
        check(jax.random.key_data(keys[outer][inner]), split[row], "exact")


def test_keys_scan_stacked(population):
    fitness, iterinfo = population[3], population[4]
    params = {"s": jax.random.normal(jax.random.key(31), (3, 4, 2)), "b": jnp.zeros(4)}
    base = jax.random.key(32)
    keys = common.simple_es_tree_key(params, base, {"s": (0,), "b": ()})
    layer_keys = jax.random.split(jax.random.split(base, 2)[1], 3)
    assert keys["s"].shape == (3,)
    check(jax.random.key_data(keys["s"]), jax.random.key_data(layer_keys), "exact")
    frozen, nparams = EggRoll.init_noiser(params, SIGMA, LR, rank=2, noise_reuse=1)
    _, new = EggRoll.do_updates(frozen, nparams, params, keys, fitness, iterinfo,
                                {"s": common.MM_PARAM, "b": common.PARAM})
    for layer in range(3):
        g = expected_lowrank_gradient(layer_keys[layer], (4, 2), fitness, 2, 2, SIGMA, 1)
        expected = np.asarray(params["s"][layer], np.float64) + LR * np.sqrt(N) * g
        check(new["s"][layer], expected, "reduction", what=f"layer {layer}")


# ---------------------------------------------------------------- argument checks


@pytest.mark.parametrize("kwargs,error", [
    ({"rank": 0}, ValueError),
    ({"rank": 1.5}, TypeError),
    ({"noise_reuse": -1}, ValueError),
    ({"group_size": -2}, ValueError),
])
def test_validation_init_arguments(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        EggRoll.init_noiser({}, SIGMA, LR, **kwargs)


def test_validation_group_size_must_divide_population():
    frozen, nparams = EggRoll.init_noiser({}, SIGMA, LR, group_size=4)
    with pytest.raises(ValueError, match="group_size"):
        EggRoll.convert_fitnesses(frozen, nparams, jnp.zeros(10))
    frozen, nparams = EggRollBS.init_noiser({}, SIGMA, LR)
    with pytest.raises(ValueError, match="group_size"):
        EggRollBS.convert_fitnesses(frozen, nparams, jnp.zeros(8))
