"""``eggroll-trainer`` 0.1.0 as a :class:`~conformance.adapters.trainer.TrainerAdapter`, through the
README's public API only: ``EGGROLLTrainer(model.parameters(), model=, fitness_fn=,
population_size=, learning_rate=, sigma=, rank=, noise_reuse=, group_size=, freeze_nonlora=,
seed=)`` and ``trainer.step()``, which calls ``fitness_fn(model)`` once per member in thread
order with the member's perturbation loaded into the module, shapes the scores, updates the
module's parameters in place and scores nothing else.

``fitness_fn`` runs the module on ``inputs[n]`` for the ``n``-th call and returns the harness's
raw fitness as a float. ``noise_reuse`` and ``group_size`` are passed through as the port's own
arguments (the checks judge its semantics); ``freeze_nonlora`` is off, as upstream's default.
There is no gradient clipping or weight decay to turn off. Unsupported: any solver but plain SGD.
(``step`` loads member ``k`` as the LIVE parameters plus its perturbation and restores them only
after the last member, so member ``k`` runs at ``base + E_0 + ... + E_k``: the port's behaviour,
observed as such by the checks, not something this adapter does.)
"""
from __future__ import annotations

from ..base import BackendInfo, Unsupported
from ..trainer import TrainerAdapter


class EggrollTrainerTrainerLevel(TrainerAdapter):
    name = "eggroll-trainer-trainer-level"

    def info(self) -> BackendInfo:
        from importlib import metadata

        import torch

        return BackendInfo(self.name, metadata.version("eggroll-trainer"), "cpu", {"torch": torch.__version__},
                           "one torch.Generator reseeded with true_epoch * 1e6 + true_thread before every draw, the "
                           "same seed for every parameter; seed= only seeds torch's global RNG")

    def build(self, module, config):
        from eggroll_trainer import EGGROLLTrainer

        if config.solver != "sgd" or config.solver_options:
            raise Unsupported("eggroll-trainer's only update is plain SGD (param += lr * sqrt(N) * estimate)")
        state = {"calls": 0}

        def fitness_fn(model):
            state["calls"] += 1
            return float(state["fitness"](model(state["inputs"][state["calls"] - 1])[None])[0])

        trainer = EGGROLLTrainer(module.parameters(), model=module, fitness_fn=fitness_fn,
                                 population_size=config.population, learning_rate=config.lr, sigma=config.sigma,
                                 rank=config.rank, noise_reuse=config.noise_reuse, group_size=config.group_size,
                                 freeze_nonlora=False, seed=config.seed)
        return trainer, state

    def step(self, built, inputs, fitness) -> None:
        trainer, state = built
        state.update(calls=0, fitness=fitness, inputs=inputs)
        trainer.step()
