"""The ``eggroll_torch-trainer`` backend: the public EggrollTrainer through the adapter protocol.

Its forward is compared with the functional adapter's (the harness compares both with the JAX
reference in ``make conformance``); what the trainer cannot express must be a skip, not an error.
"""
from __future__ import annotations

import numpy as np
import pytest

from conformance.adapters import resolve
from conformance.adapters.base import Unsupported
from conformance.spec import NoiserConfig, Population
from conformance.tolerances import assert_parity

KEY = np.array([7, 11], dtype=np.uint32)


@pytest.fixture(scope="module")
def trainer():
    return resolve("eggroll_torch-trainer")


@pytest.mark.parametrize("threads", [np.arange(6), np.arange(1000, 1006), np.arange(3, 8)],
                         ids=["full", "offset", "odd"])
def test_trainer_adapter_forward_equals_functional_forward(trainer, threads):
    config = NoiserConfig(rank=2, noise_reuse=1)
    gen = np.random.default_rng(0)
    param = gen.standard_normal((4, 3)).astype(np.float32)
    x = gen.standard_normal((len(threads), 2, 3)).astype(np.float32)
    population = Population.of(threads, epoch=5)
    got = trainer.do_mm(config, param, KEY, population, x)
    expected = resolve("eggroll_torch").do_mm(config, param, KEY, population, x)
    assert_parity(got, expected, "fused", what=f"forward of threads {threads.tolist()}")


@pytest.mark.parametrize("population, match", [
    (Population.of([0, 2, 1, 3]), "contiguous"),
    (Population(np.array([0, 1, 1, 1]), np.arange(4)), "one epoch"),
])
def test_trainer_adapter_reports_what_the_trainer_cannot_express(trainer, population, match):
    with pytest.raises(Unsupported, match=match):
        trainer.do_mm(NoiserConfig(), np.zeros((2, 2), np.float32), KEY, population, np.zeros((4, 2), np.float32))


def test_trainer_adapter_noisy_standard_equals_functional(trainer):
    config = NoiserConfig(sigma=0.3, noise_reuse=2)
    param = np.linspace(-1, 1, 5, dtype=np.float32)
    population = Population.of(np.arange(4), epoch=3)
    got = trainer.noisy_standard(config, param, KEY, population)
    assert_parity(got, resolve("eggroll_torch").noisy_standard(config, param, KEY, population), "exact",
                  what="perturbed PARAM leaf")
