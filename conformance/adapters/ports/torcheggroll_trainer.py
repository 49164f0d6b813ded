"""``torcheggroll`` 0.2.0 as a :class:`~conformance.adapters.trainer.TrainerAdapter`, through the
README's public API only: ``TorchEggrollES(model, pop_size, sigma, lr, rank, normalize_fitness,
antithetic)`` and its "async-friendly" generation, ``prepare_population()`` (one parameter dict
per member), ``torch.func.functional_call`` of the module on member ``n``'s dict and
``inputs[n]``, then ``apply_fitness_scores(fitnesses)``, which z-scores them, updates the
parameters and copies them into the module. (``es.step`` feeds one batch to every member and
vmaps the loss, so it cannot give member ``n`` its own inputs nor call the harness's fitness.)

Antithetic sampling and z-scoring are on (upstream's); there is no gradient clipping or weight
decay to turn off. ``noise_reuse`` has no counterpart: the port redraws its noise every
generation whatever is asked, and that behaviour is what the checks judge (upstream's default,
``noise_reuse=0``, keeps one noise for the whole run), as the hand-written adapter
(``torcheggroll.py``) has its noise checked. Unsupported, as features the port lacks:
``group_size``, any solver but plain SGD, and any seed but 0 (the port has no seed: its noise is a
fixed function of epoch, pair and parameter index, so seed 0 stands for that stream).
"""
from __future__ import annotations

from ..base import BackendInfo, Unsupported
from ..trainer import TrainerAdapter


class TorchEggrollTrainerLevel(TrainerAdapter):
    name = "torcheggroll-trainer-level"

    def info(self) -> BackendInfo:
        from importlib import metadata

        import torch

        return BackendInfo(self.name, metadata.version("torcheggroll"), "cpu", {"torch": torch.__version__},
                           "a fresh torch.Generator per member pair and parameter, seeded with "
                           "hash((epoch, pair, parameter index)); no user seed")

    def build(self, module, config):
        from torcheggroll import TorchEggrollES

        if config.group_size:
            raise Unsupported("torcheggroll z-scores over the whole population only (no group_size)")
        if config.solver != "sgd" or config.solver_options:
            raise Unsupported("torcheggroll's only update is plain SGD (param += lr * estimate)")
        if config.seed:
            raise Unsupported("torcheggroll has no seed: its noise is a fixed function of (epoch, pair, parameter)")
        return TorchEggrollES(module, pop_size=config.population, sigma=config.sigma, lr=config.lr, rank=config.rank,
                              device="cpu", normalize_fitness=True, antithetic=True)

    def step(self, es, inputs, fitness) -> None:
        import torch
        from torch.func import functional_call

        members = es.prepare_population()
        with torch.no_grad():
            outputs = torch.stack([functional_call(es.model, p, (x,)) for p, x in zip(members, inputs)])
        es.apply_fitness_scores(fitness(outputs))
