"""A port with its own RNG: noise rows check laws only, update rows get the reference's noise injected."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from broken.base import Mutant
from conformance.adapters import base as caps
from conformance.checks import REGISTRY
from conformance.runner import plan, run_check


class OwnRngPort(Mutant):
    """eggroll_torch whose noise comes from torch.Generator seeded per (key, epoch', thread // 2),
    upstream's structure (antithetic pairs, noise_reuse, sigma / sqrt(rank)) with another RNG."""

    capabilities = Mutant.capabilities - {caps.JAX_RNG}
    changes_noise = True
    pair_threads = True

    def _draw(self, config, key, population, shape):
        k = config.noise_reuse
        out = []
        for epoch, thread in zip(population.epochs, population.thread_ids):
            slot = 0 if k == 0 else epoch // k
            member = thread // 2 if self.pair_threads else thread
            seed = hash((int(key[0]), int(key[1]), int(slot), int(member))) % 2**31
            out.append(torch.randn(shape, generator=torch.Generator().manual_seed(seed)).numpy())
        sign = np.where(population.thread_ids % 2 == 0, 1.0, -1.0).reshape((-1,) + (1,) * len(shape))
        return np.stack(out), sign

    def lora_factors(self, config, key, shape, dtype, population):
        a, b = shape
        draw, sign = self._draw(config, key, population, (a + b, config.rank))
        scale = sign * config.sigma / np.sqrt(config.rank)
        return (draw[:, b:] * scale).astype(np.float32), draw[:, :b].astype(np.float32)

    def full_noise(self, config, key, shape, dtype, population):
        draw, sign = self._draw(config, key, population, tuple(shape))
        return (draw * sign * config.sigma).astype(np.float32)


class UnpairedOwnRngPort(OwnRngPort):
    """The same port with a bug: every thread draws its own noise (no antithetic pairs)."""

    pair_threads = False


def test_plan_says_how_each_kind_of_check_reaches_an_own_rng_port():
    port = OwnRngPort()
    assert plan(REGISTRY["normalization.zscore"], port).mode == "reference"
    assert plan(REGISTRY["update.lowrank"], port).mode == "injected"
    assert plan(REGISTRY["signs.antithetic_pair"], port).mode == "relations"
    skipped = plan(REGISTRY["keys.tree_order"], port)
    assert skipped.mode == "none" and "own RNG" in skipped.reason


@pytest.mark.parametrize("check_id, mode", [
    ("update.lowrank", "injected"), ("update.full", "injected"), ("update.mixed_tree", "injected"),
    ("noise.freeze_nonlora", "injected"), ("optimizer.noiser_solver", "injected"),
    ("signs.antithetic_pair", "relations"), ("noise.reuse_zero_freezes", "relations"),
    ("noise.reuse_blocks", "relations"), ("noise.rank_scaling", "relations"), ("noise.full_rank", "relations"),
    ("normalization.group", "reference"),
])
def test_own_rng_port_passes_everything_it_can_be_checked_on(check_id, mode, vector_reference):
    r = run_check(REGISTRY[check_id], OwnRngPort(), vector_reference, "ci")
    assert (r.status, r.mode) == ("pass", mode), r.messages[:3]
    if mode != "reference":
        assert "own RNG" in r.note


def test_own_rng_port_without_antithetic_pairs_fails_the_pair_laws(vector_reference):
    r = run_check(REGISTRY["signs.antithetic_pair"], UnpairedOwnRngPort(), vector_reference, "ci")
    assert r.status == "fail" and r.mode == "relations"
    assert any("not one antithetic pair" in m for m in r.messages)


def test_injected_reference_noise_reproduces_the_native_update(torch_adapter, vector_reference):
    check = REGISTRY["update.mixed_tree"]
    case = check.cases("ci")[0]
    expected = vector_reference.expected(check, case)
    native = check.compute(torch_adapter, case)
    injected = check.compute(torch_adapter, case, noise=expected.aux)
    for name, value in native.items():
        np.testing.assert_array_equal(injected[name], value, err_msg=name)
