"""eggroll_torch.fast.LowRankStack against jax_reference: forward, update, and a training run.

The fast path reorders arithmetic (one shared matmul for all members, pairs collapsed in the
update, the sign moved from ``A`` to ``x @ B``), so outputs and parameters agree with the
reference up to summation order; where a perturbation nearly cancels the base term that order
shows at the element's own scale, hence the ``trajectory`` kind. The noise itself is exact
(test_fast_noise.py).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from conformance.tolerances import assert_parity
from eggroll_torch import optim
from eggroll_torch.fast import LowRankStack, layer_keys, standardize
from eggroll_torch.random import wrap_key_data
from fast_support import jax_key
from jax_reference.examples.mlp_e2e import run_mlp_example
from jax_reference.models import common
from jax_reference.noiser.eggroll import EggRoll

WIDTHS = (5, 7, 6, 4)
N, T, RANK, SIGMA, EPOCH = 8, 3, 2, 0.3, 3


def _setup():
    rng = np.random.default_rng(0)
    weights = [(rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32) for i, o in zip(WIDTHS, WIDTHS[1:])]
    x = rng.standard_normal((N, T, WIDTHS[0])).astype(np.float32)
    keys, _ = layer_keys(wrap_key_data(np.array([0, 42], dtype=np.uint32)), len(weights), with_bias=False)
    stack = LowRankStack([torch.from_numpy(w) for w in weights], keys, sigma=SIGMA, rank=RANK, num_members=N)
    params = {str(i): jnp.asarray(w) for i, w in enumerate(weights)}
    frozen, noiser_params = EggRoll.init_noiser(params, SIGMA, 0.1, rank=RANK, noise_reuse=1)
    tree_key = {str(i): jax_key(keys[i]) for i in range(len(weights))}
    return stack, x, params, frozen, noiser_params, tree_key


def _jax_population(params, frozen, noiser_params, tree_key, x):
    iterinfo = (jnp.full(N, EPOCH, dtype=jnp.int32), jnp.arange(N))

    def member(info, xm):
        h = xm
        for i in range(len(params)):
            h = EggRoll.do_mm(frozen, noiser_params, params[str(i)], tree_key[str(i)], info, h)
            if i < len(params) - 1:
                h = jnp.tanh(h)
        return h

    return jax.vmap(member)(iterinfo, jnp.asarray(x)), iterinfo


def test_stack_layer_keys_are_simple_es_tree_key():
    es_key = jax.random.key(9)
    for with_bias in (False, True):
        layers = 11  # string order "0", "1", "10", "2", ... is not numeric order
        params = {str(i): ({"bias": jnp.zeros(1), "weight": jnp.zeros((1, 1))} if with_bias else jnp.zeros((1, 1)))
                  for i in range(layers)}
        scan_map = jax.tree.map(lambda _: (), params)
        expected = common.simple_es_tree_key(params, es_key, scan_map)
        weights, biases = layer_keys(wrap_key_data(np.asarray(jax.random.key_data(es_key))), layers, with_bias)
        for i in range(layers):
            leaf = expected[str(i)]["weight"] if with_bias else expected[str(i)]
            assert_parity(weights[i], jax.random.key_data(leaf), "exact", what=f"weight key {i}")
            if with_bias:
                assert_parity(biases[i], jax.random.key_data(expected[str(i)]["bias"]), "exact", what=f"bias key {i}")


def test_stack_forward_matches_reference():
    stack, x, params, frozen, noiser_params, tree_key = _setup()
    expected, _ = _jax_population(params, frozen, noiser_params, tree_key, x)
    noise = stack.draw(EPOCH)
    assert_parity(stack.forward(torch.from_numpy(x), noise), expected, "trajectory", what="population outputs")
    means = stack.forward(torch.from_numpy(x), noise, reduce="mean")
    assert_parity(means, expected.mean(axis=(1, 2)), "trajectory", what="mean outputs")


def test_stack_gradients_and_sgd_step_match_reference():
    stack, x, params, frozen, noiser_params, tree_key = _setup()
    outputs, iterinfo = _jax_population(params, frozen, noiser_params, tree_key, x)
    fitnesses = EggRoll.convert_fitnesses(frozen, noiser_params, outputs.mean(axis=(1, 2)))
    noise = stack.draw(EPOCH)
    grads, bias_grads = stack.gradients(torch.from_numpy(np.array(fitnesses)), noise)
    assert bias_grads is None
    for i, grad in enumerate(grads):
        expected = EggRoll._do_update(params[str(i)], tree_key[str(i)], fitnesses, iterinfo, common.MM_PARAM,
                                      SIGMA, frozen)
        assert_parity(grad, expected, "trajectory", what=f"gradient of layer {i}")
    _, new_params = EggRoll.do_updates(frozen, noiser_params, params, tree_key, fitnesses, iterinfo,
                                       {k: common.MM_PARAM for k in params})
    stack.sgd_step_(torch.from_numpy(np.array(fitnesses)), noise, 0.1)
    for i, weight in enumerate(stack.weights):
        assert_parity(weight, new_params[str(i)], "trajectory", what=f"layer {i} after one SGD step")


def test_stack_mlp_example_trajectory_matches_reference():
    """Upstream's end-to-end example (biases, relu, adamw, noise_reuse=0) for three epochs."""
    run = run_mlp_example(epochs=3)
    names = sorted(run.initial_params, key=int)
    params = {k: {leaf: torch.from_numpy(np.array(v)) for leaf, v in run.initial_params[k].items()} for k in names}
    es_key = jax.random.fold_in(jax.random.key(0), 1)
    weight_keys, bias_keys = layer_keys(wrap_key_data(np.asarray(jax.random.key_data(es_key))), len(names), True)
    stack = LowRankStack([params[k]["weight"] for k in names], weight_keys, sigma=0.2, rank=8, num_members=64,
                         activation="relu", biases=[params[k]["bias"] for k in names], bias_keys=bias_keys,
                         noise_reuse=0)
    solver = optim.adamw(0.03, b1=0.9, b2=0.999)
    state = solver.init(params)
    for epoch in range(3):
        noise = stack.draw(epoch)
        out = stack.forward(torch.from_numpy(np.array(run.inputs[epoch]))[:, None, :], noise)
        assert_parity(-((out[:, 0, 0] - 2) ** 2), run.raw_scores[epoch], "trajectory", what=f"scores {epoch}")
        weight_grads, bias_grads = stack.gradients(standardize(-((out[:, 0, 0] - 2) ** 2)), noise)
        grads = {k: {"bias": bias_grads[i], "weight": weight_grads[i]} for i, k in enumerate(names)}
        updates, state = solver.update(grads, state, params)
        params = optim.apply_updates(params, updates)
        stack.weights = [params[k]["weight"] for k in names]
        stack.biases = [params[k]["bias"] for k in names]
        for k in names:
            for leaf in ("weight", "bias"):
                assert_parity(params[k][leaf], run.params[epoch][k][leaf], "trajectory",
                              what=f"{k}.{leaf} after epoch {epoch}")


def test_stack_noise_reuse_zero_draws_once():
    stack = _setup()[0]
    stack.noise_reuse = 0
    first = stack.draw(0)
    assert stack.draw(5) is first
    stack.noise_reuse = 1
    before = first.factors[0].clone()
    assert not torch.equal(stack.draw(6).factors[0], before)


def test_stack_bad_input_is_rejected():
    keys, _ = layer_keys(wrap_key_data(np.array([0, 1], dtype=np.uint32)), 2, with_bias=False)
    good = [torch.zeros(3, 4), torch.zeros(2, 3)]
    with pytest.raises(ValueError, match="even int"):
        LowRankStack(good, keys, sigma=0.1, rank=1, num_members=5)
    with pytest.raises(ValueError, match="must chain"):
        LowRankStack([torch.zeros(3, 4), torch.zeros(2, 5)], keys, sigma=0.1, rank=1, num_members=4)
    with pytest.raises(TypeError, match="weight_keys"):
        LowRankStack(good, keys[:1], sigma=0.1, rank=1, num_members=4)
    with pytest.raises(ValueError, match="activation"):
        LowRankStack(good, keys, sigma=0.1, rank=1, num_members=4, activation="gelu")
    stack = LowRankStack(good, keys, sigma=0.1, rank=1, num_members=4)
    with pytest.raises(ValueError, match=r"x must be \(N=4"):
        stack.forward(torch.zeros(4, 2, 3), stack.draw(0))
