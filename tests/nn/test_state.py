"""state.resume_bit_identical: a run saved, written to disk, loaded into a fresh trainer and
continued equals the uninterrupted run bit for bit."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from conformance.tolerances import assert_tree_parity
from eggroll_torch.nn import EggrollTrainer

from nn_support import small_net, snapshot

N = 8


def _fitness(epoch_inputs):
    def fitness(pop):
        y = pop(epoch_inputs[pop.epoch])
        return -((y - 1.0) ** 2).mean(dim=(-1, -2))

    return fitness


def _build(solver, module=None, **kwargs):
    return EggrollTrainer(
        module if module is not None else small_net(), 0.2, 0.05, population_size=N, rank=2,
        noise_reuse=1, solver=solver, seed=11, **kwargs,
    )


@pytest.mark.parametrize(
    "solver, solver_kwargs",
    [("adamw", {"b1": 0.9, "b2": 0.999}), ("sgd", {"momentum": 0.9, "nesterov": True}), (torch.optim.Adam, {})],
    ids=["adamw", "sgd-nesterov", "torch-adam"],
)
def test_state_resume_bit_identical(tmp_path, solver, solver_kwargs):
    torch.manual_seed(5)
    inputs = [torch.randn(N, 3, 5) for _ in range(5)]
    fitness = _fitness(inputs)

    straight = _build(solver, solver_kwargs=solver_kwargs)
    for _ in range(5):
        straight.step(fitness)

    first = _build(solver, solver_kwargs=solver_kwargs)
    for _ in range(2):
        first.step(fitness)
    torch.save(first.state_dict(), tmp_path / "es.pt")

    fresh_module = nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.LayerNorm(12), nn.Linear(12, 3))
    resumed = _build(solver, module=fresh_module, solver_kwargs=solver_kwargs)
    resumed.load_state_dict(torch.load(tmp_path / "es.pt"))
    assert resumed.epoch == 2
    for _ in range(3):
        resumed.step(fitness)
    assert_tree_parity(snapshot(resumed), snapshot(straight), "bits", what="state")


def test_state_dict_is_a_copy():
    trainer = _build("adam")
    saved = trainer.state_dict()
    trainer.step(_fitness([torch.randn(N, 3, 5)]))
    assert saved["epoch"] == 0
    assert not torch.equal(saved["params"]["0.weight"], trainer.module[0].weight.detach())


def test_state_load_rejects_other_architecture_before_writing():
    trainer = _build("sgd")
    other = EggrollTrainer(nn.Linear(5, 3), 0.2, 0.05, population_size=N, seed=11)
    before = snapshot(trainer)
    with pytest.raises(ValueError, match="same architecture"):
        trainer.load_state_dict(other.state_dict())
    assert_tree_parity(snapshot(trainer), before, "bits", what="state")


def test_state_load_rejects_other_dtype_before_writing():
    trainer = _build("sgd")
    other = _build("sgd", module=small_net(torch.float64))
    before = snapshot(trainer)
    with pytest.raises(TypeError, match=r"state_dict\['params'\]\['0\.\w+'\] is torch.float64 .*torch.float32"):
        trainer.load_state_dict(other.state_dict())
    assert_tree_parity(snapshot(trainer), before, "bits", what="state")
