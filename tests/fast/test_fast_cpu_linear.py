"""The CPU matmul choice (:mod:`eggroll_torch.fast.cpu_linear`): decided outside ``vmap``, where
its probe can run, and never left off for the process by a first call under a transform."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from eggroll_torch.fast import cpu_linear
from eggroll_torch.nn import EggrollTrainer


@pytest.fixture
def undecided(monkeypatch):
    monkeypatch.setattr(cpu_linear, "_USABLE", [])


def test_under_vmap_the_answer_is_no_and_is_not_kept(undecided):
    seen = []

    def under_transform(x):
        seen.append(cpu_linear.onednn_usable())
        return x

    torch.vmap(under_transform)(torch.ones(2, 3))
    assert seen == [False] and cpu_linear._USABLE == []
    assert cpu_linear.onednn_usable() == cpu_linear._probe()
    assert cpu_linear._USABLE == [cpu_linear._probe()]


def test_the_population_forward_decides_before_it_enters_vmap(undecided):
    trainer = EggrollTrainer(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1)), 0.1, 0.01,
                             population_size=4, rank=2)
    trainer.step(lambda population: population(torch.ones(4, 8))[:, 0])
    assert cpu_linear._USABLE == [cpu_linear._probe()]
