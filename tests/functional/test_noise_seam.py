"""The noise seam of both trees: a noiser subclass that overrides its noise classmethods
(``full_noise``, ``lora_noise``, ``sparse_noise``) changes the forward pass and the update alike,
because every forward and every estimator draws through the class it is called on."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import jax_reference.models.common as jcommon
import jax_reference.noiser as jnoiser
from conformance.spec import PERTURBING_NOISERS
from conformance.tolerances import assert_parity
from eggroll_torch import noiser as tnoiser
from eggroll_torch import optim
from eggroll_torch.models import common
from parity_support import key, population, random_tensor, to_jax

SIGMA = 0.5
N = 8
INIT = {"rank": 2, "group_size": 4, "noise_reuse": 1}


def negated(noiser):
    """``noiser`` whose every draw is negated: each member's perturbation flips sign, so its
    forward perturbation and its update estimate flip sign too."""

    class Negated(noiser):
        @classmethod
        def full_noise(cls, frozen_noiser_params, base_sigma, iterinfo, param, key):
            return -super().full_noise(frozen_noiser_params, base_sigma, iterinfo, param, key)

        @classmethod
        def lora_noise(cls, frozen_noiser_params, base_sigma, iterinfo, param, key):
            A, B = super().lora_noise(frozen_noiser_params, base_sigma, iterinfo, param, key)
            return -A, B

        @classmethod
        def sparse_noise(cls, frozen_noiser_params, base_sigma, iterinfo, param, key):
            values, rows, cols = super().sparse_noise(frozen_noiser_params, base_sigma, iterinfo, param, key)
            return -values, rows, cols

    return Negated


def _assert_flipped(plain, drawn, flipped, what):
    """``flipped - plain == -(drawn - plain)`` (to rounding) and the perturbation is not zero."""
    plain, drawn, flipped = (np.asarray(v, np.float64) for v in (plain, drawn, flipped))
    assert np.abs(drawn - plain).max() > 0, f"{what}: no perturbation to flip"
    assert_parity(flipped - plain, -(drawn - plain), "negated_noise", what=what)


def _assert_update_flipped(name, noisers, sgd, zeros, keys, fitnesses, iterinfo, es_map):
    """One SGD step of ``noisers = (plain, negated)`` from zero params: the negated noiser's new
    params are exactly minus the plain one's (they are ``-lr * grad``, and negation rounds
    symmetrically), and not all zero."""
    plain, flipped = (
        cls.do_updates(*cls.init_noiser(zeros, SIGMA, 1.0, solver=sgd, **INIT), zeros, keys, fitnesses, iterinfo,
                       es_map)[1]
        for cls in noisers)
    for leaf in ("w", "b"):
        assert np.count_nonzero(np.asarray(plain[leaf])), f"{name} {leaf}: the update is zero, nothing to flip"
        np.testing.assert_array_equal(np.asarray(flipped[leaf]), -np.asarray(plain[leaf]),
                                      err_msg=f"{name} {leaf}: the update did not flip")


def _case():
    params = {"w": random_tensor(1, (4, 3), torch.float32), "b": random_tensor(2, (4,), torch.float32)}
    inputs = {"do_mm": random_tensor(3, (N, 3), torch.float32), "do_Tmm": random_tensor(4, (N, 4), torch.float32)}
    return params, {"w": common.MM_PARAM, "b": common.PARAM}, inputs, random_tensor(6, (N,), torch.float32)


@pytest.mark.parametrize("name", PERTURBING_NOISERS)
def test_torch_overriding_the_noise_flips_forward_and_update_alike(name):
    noiser = tnoiser.all_noisers[name]
    flipped = negated(noiser)
    params, es_map, inputs, fitnesses = _case()
    keys = common.simple_es_tree_key(params, key(5), {"w": (), "b": ()})
    iterinfo, _ = population(N, epoch=1)
    frozen, nparams = noiser.init_noiser(params, SIGMA, 1.0, **INIT)
    for method, x in inputs.items():
        forward = {cls: getattr(cls, method)(frozen, nparams, params["w"], keys["w"], iterinfo, x)
                   for cls in (noiser, flipped)}
        _assert_flipped(getattr(noiser, method)(frozen, nparams, params["w"], keys["w"], None, x), forward[noiser],
                        forward[flipped], method)
    noisy = {cls: cls.get_noisy_standard(frozen, nparams, params["b"], keys["b"], iterinfo)
             for cls in (noiser, flipped)}
    _assert_flipped(params["b"].expand(N, 4), noisy[noiser], noisy[flipped], "get_noisy_standard")

    zeros = {k: torch.zeros_like(v) for k, v in params.items()}
    _assert_update_flipped(name, (noiser, flipped), optim.sgd, zeros, keys, fitnesses, iterinfo, es_map)


@pytest.mark.parametrize("name", PERTURBING_NOISERS)
def test_jax_reference_overriding_the_noise_flips_forward_and_update_alike(name):
    noiser = jnoiser.all_noisers[name]
    flipped = negated(noiser)
    params, es_map, inputs, fitnesses = (jax.tree.map(to_jax, part) for part in _case())
    keys = jcommon.simple_es_tree_key(params, jax.random.key(5), {"w": (), "b": ()})
    _, iterinfo = population(N, epoch=1)
    frozen, nparams = noiser.init_noiser(params, SIGMA, 1.0, **INIT)
    for method, x in inputs.items():
        def forward(cls, it, xi, method=method):
            return getattr(cls, method)(frozen, nparams, params["w"], keys["w"], it, xi)

        _assert_flipped(jax.vmap(lambda xi: forward(noiser, None, xi))(x),
                        jax.vmap(lambda it, xi: forward(noiser, it, xi))(iterinfo, x),
                        jax.vmap(lambda it, xi: forward(flipped, it, xi))(iterinfo, x), method)

    def noisy(cls, it):
        return cls.get_noisy_standard(frozen, nparams, params["b"], keys["b"], it)

    _assert_flipped(jnp.broadcast_to(params["b"], (N, 4)), jax.vmap(lambda it: noisy(noiser, it))(iterinfo),
                    jax.vmap(lambda it: noisy(flipped, it))(iterinfo), "get_noisy_standard")

    zeros = jax.tree.map(jnp.zeros_like, params)
    _assert_update_flipped(name, (noiser, flipped), optax.sgd, zeros, keys, fitnesses, iterinfo, es_map)
