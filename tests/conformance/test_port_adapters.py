"""The port adapters read the ports faithfully (runs once ``make certify-ports`` installed them)."""
from __future__ import annotations

import jax
import numpy as np
import pytest

from conformance.spec import NoiserConfig, Population
from conformance.tolerances import assert_parity


KEY = np.array([7, 11], np.uint32)


def _reference_draw(epoch: int, pair: int, shape: tuple) -> np.ndarray:
    k = jax.random.fold_in(jax.random.fold_in(jax.random.wrap_key_data(KEY), epoch), pair)
    return np.asarray(jax.random.normal(k, shape, np.float32))


def test_torcheggroll_factors_rebuild_the_noise_the_port_materialises():
    pytest.importorskip("torcheggroll", reason="port not installed; `make certify-ports` installs it")
    import torch

    from conformance.adapters.ports._torch_trees import one_param_module
    from conformance.adapters.ports.torcheggroll import TorchEggrollAdapter

    adapter, config, pop = TorchEggrollAdapter(), NoiserConfig(rank=2, sigma=0.3), Population.of(np.arange(6))
    a, b = adapter.lora_factors(config, KEY, (4, 3), "float32", pop)
    params, _ = adapter._member_params(config, one_param_module(torch.zeros(4, 3)), {"w": KEY}, pop)
    assert_parity(np.einsum("nir,njr->nij", a, b), params["w"], "float32_rederived", what="A @ B.T")


def test_eggroll_trainer_routed_draws_follow_its_seed_scheme():
    pytest.importorskip("eggroll_trainer", reason="port not installed; `make certify-ports` installs it")
    from conformance.adapters.ports.eggroll_trainer import EggrollTrainerAdapter

    pop = Population(epochs=np.array([0, 0, 5, 5]), thread_ids=np.array([0, 1, 2, 3]))
    _, b = EggrollTrainerAdapter().lora_factors(NoiserConfig(rank=2, noise_reuse=2), KEY, (4, 3), "float32", pop)
    for n, (e, t) in enumerate(zip(pop.epochs, pop.thread_ids)):
        np.testing.assert_array_equal(b[n], _reference_draw(int(e) // 2, int(t) // 2, (7, 2))[:3])
