"""e2e.mlp_trajectory: upstream's 10-epoch MLP example run in torch (its own forwards, inputs
and fitnesses) tracks jax_reference's run at every epoch (kind ``trajectory``)."""
from __future__ import annotations

import jax
import numpy as np
import pytest
import torch

from conformance.tolerances import assert_parity, assert_tree_parity
from eggroll_torch.examples.mlp_e2e import run_mlp_example
from jax_reference.examples.mlp_e2e import run_mlp_example as run_reference
from parity_support import CUDA

EPOCHS = 10


@pytest.fixture(scope="module")
def runs():
    # eggroll_torch draws XLA:CPU's numbers on every device; XLA:GPU's normal differs in the last bits
    # (tests/random/test_gpu_variant.py), so the reference runs on the CPU even where JAX has a GPU.
    with jax.default_device(jax.devices("cpu")[0]):
        reference = run_reference(epochs=EPOCHS)
    return run_mlp_example(epochs=EPOCHS), reference


def test_e2e_initial_params_and_inputs_exact(runs):
    torch_run, jax_run = runs
    assert_tree_parity(torch_run.initial_params, jax_run.initial_params, "exact", what="initial params")
    for epoch in range(EPOCHS):
        assert_parity(torch_run.inputs[epoch], np.asarray(jax_run.inputs[epoch]), "exact", what=f"inputs {epoch}")


def test_e2e_mlp_trajectory(runs):
    torch_run, jax_run = runs
    assert len(torch_run.params) == EPOCHS
    for epoch in range(EPOCHS):
        assert_tree_parity(torch_run.params[epoch], jax_run.params[epoch], "trajectory", what=f"epoch {epoch}")


@pytest.mark.parametrize("device", [CUDA])
def test_e2e_mlp_trajectory_on_device(runs, device):
    """The same run with every tensor on ``device``: inputs exact, params within trajectory."""
    _, jax_run = runs
    device_run = run_mlp_example(epochs=EPOCHS, device=device)
    for epoch in range(EPOCHS):
        assert_parity(device_run.inputs[epoch], np.asarray(jax_run.inputs[epoch]), "exact", what=f"inputs {epoch}")
        assert_tree_parity(device_run.params[epoch], jax_run.params[epoch], "trajectory", what=f"epoch {epoch}")


def test_e2e_training_improves_fitness(runs):
    torch_run, _ = runs
    assert torch_run.validation_scores[-1].mean() > torch_run.validation_scores[0].mean()


@pytest.mark.slow
def test_e2e_float64_matches_x64_reference():
    """float64 against JAX with x64 enabled (3 epochs; one float64 step runs by default in
    test_updates)."""
    torch_run = run_mlp_example(epochs=3, dtype=torch.float64)
    with jax.enable_x64(True):
        jax_run = run_reference(epochs=3, dtype="float64")
        assert_tree_parity(torch_run.initial_params, jax_run.initial_params, "exact", what="initial params")
        for epoch in range(3):
            assert_tree_parity(torch_run.params[epoch], jax_run.params[epoch], "trajectory", what=f"epoch {epoch}")
