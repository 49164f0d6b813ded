"""``EggrollTrainer`` as a :class:`~.trainer.TrainerAdapter`: the trainer-level checks' control
(our trainer reproduces upstream, so every trainer check must pass on it) and the shortest
example of the protocol."""
from __future__ import annotations

from .base import BackendInfo
from .trainer import TrainerAdapter


class EggrollTorchTrainerLevel(TrainerAdapter):
    """``eggroll_torch.nn.EggrollTrainer`` on the CPU, through ``step`` only."""

    name = "eggroll_torch-trainer-level"

    def info(self) -> BackendInfo:
        from importlib import metadata

        import torch

        return BackendInfo(self.name, metadata.version("eggroll-parity"), "cpu", {"torch": torch.__version__},
                           "eggroll_torch.random reproduces JAX's threefry; observed here only through its trainer")

    def build(self, module, config):
        from eggroll_torch.nn import EggrollTrainer

        return EggrollTrainer(module, config.sigma, config.lr, population_size=config.population, rank=config.rank,
                              noise_reuse=config.noise_reuse, group_size=config.group_size, solver=config.solver,
                              solver_kwargs=config.solver_options, seed=config.seed)

    def step(self, trainer, inputs, fitness) -> None:
        trainer.step(lambda population: fitness(population(inputs)))
