"""Bad input raises a ValueError/TypeError naming the argument, before any state changes."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from conformance.tolerances import assert_tree_parity
from eggroll_torch import random as es_random
from eggroll_torch.nn import EggrollTrainer

from nn_support import small_net, snapshot

N = 6


def _trainer(**kwargs):
    options = dict(population_size=N, rank=2, solver="adam", noise_reuse=1, seed=0)
    options.update(kwargs)
    return EggrollTrainer(small_net(), 0.2, 0.05, **options)


def _stepped_trainer():
    # One real step first, so the optimizer state is not the trivial initial one.
    trainer = _trainer()
    trainer.step(lambda pop: pop(torch.randn(N, 5)).sum(-1))
    return trainer


@pytest.mark.parametrize(
    "fitness, error, match",
    [
        (torch.zeros(N - 1), ValueError, r"fitness has 5 entries but the population .* has 6 members"),
        (torch.zeros(N, 1), ValueError, r"fitness must be 1-D .*got shape \(6, 1\)"),
        (torch.tensor([0.0, 1.0, float("nan"), 2.0, 3.0, 4.0]), ValueError, r"fitness must be finite; found nan"),
        (torch.tensor([0.0, float("inf"), 1.0, 2.0, 3.0, float("-inf")]), ValueError,
         r"fitness must be finite; found inf"),
        (torch.arange(N), TypeError, r"fitness must be a floating tensor.*\.float\(\)"),
        ([0.0] * N, TypeError, r"fitness must be a torch tensor"),
        (torch.zeros(N, device="meta"), ValueError, r"fitness is on meta but the params are on .*cpu.*\.to\('cpu'\)"),
    ],
    ids=["short", "2d", "nan", "inf", "int", "list", "device"],
)
def test_bad_fitness_rejected_and_state_untouched(fitness, error, match):
    trainer = _stepped_trainer()
    before = snapshot(trainer)
    with pytest.raises(error, match=match):
        trainer.update(fitness)
    with pytest.raises(error, match=match):
        trainer.step(lambda pop: fitness)
    assert_tree_parity(snapshot(trainer), before, "bits", what="state")
    trainer.update(torch.randn(N))
    assert trainer.epoch == before["epoch"] + 1


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"sigma": 0.0}, ValueError, r"sigma must be a finite number > 0"),
        ({"sigma": "0.1"}, TypeError, r"sigma must be a real number"),
        ({"sigma": -1.0}, ValueError, r"sigma must be a finite number > 0"),
        ({"sigma": float("nan")}, ValueError, r"sigma must be a finite number > 0"),
        ({"lr": float("inf")}, ValueError, r"lr must be finite"),
        ({"rank": 0}, ValueError, r"rank must be an integer >= 1"),
        ({"rank": 2.0}, TypeError, r"rank must be an integer"),
        ({"rank": True}, TypeError, r"rank must be an integer"),
        ({"population_size": 0}, ValueError, r"population_size must be an integer >= 1"),
        ({"group_size": 4}, ValueError, r"group_size=4 does not divide population_size=6"),
        ({"group_size": -1}, ValueError, r"group_size must be an integer >= 0"),
        ({"noise_reuse": -1}, ValueError, r"noise_reuse must be an integer >= 0"),
        ({"freeze_nonlora": 1}, TypeError, r"freeze_nonlora must be True or False"),
        ({"noiser": "eggrol"}, ValueError, r"noiser: unknown name 'eggrol'"),
        ({"noiser": nn.Linear}, TypeError, r"noiser must be a name"),
        ({"solver": "adamm"}, ValueError, r"solver: unknown name 'adamm'"),
        ({"solver": 3}, TypeError, r"solver must be"),
        ({"solver_kwargs": [("b1", 0.9)]}, TypeError, r"solver_kwargs must be a dict"),
        ({"seed": 1, "es_key": es_random.key(1)}, ValueError, r"give seed or es_key, not both"),
        ({"seed": None, "es_key": torch.zeros(2, dtype=torch.int64)}, TypeError, r"es_key must be a torch.uint32"),
        ({"seed": None, "es_key": es_random.split(es_random.key(0), 3)}, ValueError,
         r"es_key must be one key of shape \(2,\)"),
        ({"es_classes": {"0.wieght": 1}}, ValueError, r"es_classes names '0.wieght'.*did you mean \['0.weight'"),
        ({"es_classes": {"0.bias": 1}}, ValueError, r"es_classes\['0.bias'\] = MM_PARAM needs a 2-D"),
        ({"es_classes": {"0.bias": 7}}, ValueError, r"es_classes\['0.bias'\] = 7 is not an ES class"),
        ({"es_classes": ["0.bias"]}, TypeError, r"es_classes must be a mapping"),
    ],
)
def test_bad_construction_arguments_rejected_before_touching_the_module(kwargs, error, match):
    module = small_net()
    before = {path: p.detach().clone() for path, p in module.named_parameters()}
    options = dict(sigma=0.2, lr=0.05, population_size=N, rank=2, seed=0)
    options.update(kwargs)
    sigma, lr = options.pop("sigma"), options.pop("lr")
    with pytest.raises(error, match=match):
        EggrollTrainer(module, sigma, lr, **options)
    for path, p in module.named_parameters():
        assert torch.equal(p, before[path])


def test_bad_module_rejected():
    with pytest.raises(TypeError, match="module must be a torch.nn.Module"):
        EggrollTrainer(lambda x: x, 0.1, 0.1, population_size=2)
    with pytest.raises(ValueError, match="module has no parameters"):
        EggrollTrainer(nn.ReLU(), 0.1, 0.1, population_size=2)
    with pytest.raises(ValueError, match="uninitialized \\(lazy\\) parameters"):
        EggrollTrainer(nn.LazyLinear(3), 0.1, 0.1, population_size=2)


def test_odd_population_is_accepted():
    trainer = _trainer(population_size=5)
    metrics = trainer.step(lambda pop: pop(torch.randn(5, 5)).sum(-1))
    assert metrics["epoch"] == 0 and trainer.epoch == 1


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda pop: pop(torch.randn(N - 1, 5)), ValueError, r"argument 0 has shape \(5, 5\).*in_dims=None"),
        (lambda pop: pop(torch.randn(N, 5, dtype=torch.float64)), TypeError,
         r"argument 0 has dtype torch.float64.*\.to\(torch.float32\)"),
        (lambda pop: pop(torch.randn(N, 5), in_dims=(0, None)), ValueError, r"in_dims has 2 entries for 1"),
        (lambda pop: pop(torch.randn(N, 5), in_dims=1.0), TypeError, r"in_dims\[0\] must be an int axis or None"),
        (lambda pop: pop(torch.randn(N, 5, device="meta")), ValueError, r"argument 0 is on meta"),
    ],
    ids=["size", "dtype", "in_dims-length", "in_dims-type", "device"],
)
def test_bad_population_input(call, error, match):
    trainer = _trainer()
    with pytest.raises(error, match=match):
        call(trainer.population())


def test_stale_population_raises():
    trainer = _trainer()
    pop = trainer.population()
    trainer.update(torch.randn(N))
    with pytest.raises(RuntimeError, match="trainer.population\\(\\)"):
        pop(torch.randn(N, 5))


def test_eggrollbs_needs_one_group_per_population():
    trainer = _trainer(noiser="eggrollbs", group_size=3)
    before = snapshot(trainer)
    with pytest.raises(ValueError, match="population_size == group_size"):
        trainer.update(torch.randn(N))
    assert_tree_parity(snapshot(trainer), before, "bits", what="state")


@pytest.mark.parametrize(
    "members, error, match",
    [
        (range(4, 9), ValueError, r"members=range\(4, 9\) must be a non-empty range inside range\(6\)"),
        (range(3, 3), ValueError, r"must be a non-empty range"),
        ([0, 1], TypeError, r"members must be a contiguous range of thread ids"),
        (range(0, 6, 2), TypeError, r"members must be a contiguous range"),
    ],
)
def test_bad_thread_ids(members, error, match):
    trainer = _trainer()
    with pytest.raises(error, match=match):
        trainer.population(members)


def test_bad_solver_kwargs_leave_the_module_untouched():
    module = small_net()
    before = {path: p.detach().clone() for path, p in module.named_parameters()}
    with pytest.raises(TypeError, match="betas"):
        EggrollTrainer(
            module, 0.2, 0.05, population_size=N, solver="adamw", solver_kwargs={"betas": (0.9, 0.99)}, device="meta",
        )
    for path, p in module.named_parameters():
        assert p.device.type == "cpu" and torch.equal(p, before[path])
