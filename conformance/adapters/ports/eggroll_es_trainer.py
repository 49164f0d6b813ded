"""``eggroll-es`` 0.2.0 (module ``eggroll``) as a :class:`~conformance.adapters.trainer.TrainerAdapter`,
through the README's public API only: ``EggrollTrainer(model, EggrollConfig(...), reward_fn)`` and
``trainer.evolve(dataloader)``, run for one generation per harness step (``generations=1``, the
dataloader a one-batch list holding ``inputs``). ``evolve`` calls ``reward_fn(model, batch)`` once
per member, in the order ``LowRankNoiser`` samples them (``+e_p``, ``-e_p`` for each pair ``p``),
with the member's perturbation loaded into the module, and writes the update into it. (``evolve``
ends by restoring the generation whose best raw fitness was highest, which upstream never does;
with one generation per call that is the update itself, so this behaviour cannot be observed.)

``population_size`` is the number of antithetic PAIRS (``sample_perturbations(n)`` returns ``2n``
members), so it is ``N / 2``. The fitness transform is the port's z-score option
(``fitness_shaping="normalized"``; its default ``"centered_rank"`` is not upstream's), weight decay
0 and ``elite_k`` 0 (upstream has neither). No gradient clipping exists. The port prints progress;
the adapter silences it. ``noise_reuse`` has no counterpart: the port draws fresh noise every
generation from one generator whatever is asked, and that behaviour is what the checks judge
(upstream's default, ``noise_reuse=0``, keeps one noise for the whole run). Unsupported, as
features the port lacks: ``group_size`` and any solver but plain SGD.
"""
from __future__ import annotations

import contextlib
from importlib import metadata

from ..base import BackendInfo, Unsupported
from ..trainer import TrainerAdapter


class EggrollEsTrainerLevel(TrainerAdapter):
    name = "eggroll-es-trainer-level"

    def info(self) -> BackendInfo:
        return BackendInfo(self.name, metadata.version("eggroll-es"), "cpu", {"torch": metadata.version("torch")},
                           "one torch.Generator seeded once with the seed, every member's factors drawn from it in "
                           "call order; a perturbation is (A * B).sum(-1) over (numel, r) factors, not A @ B.T")

    def build(self, module, config):
        from eggroll import EggrollConfig, EggrollTrainer

        if config.group_size:
            raise Unsupported("eggroll-es has no group normalization (group_size)")
        if config.solver != "sgd" or config.solver_options:
            raise Unsupported("eggroll-es's only update is plain SGD (param += lr * sum(f * e) / (N * sigma))")
        port = EggrollConfig(population_size=config.population // 2, rank=config.rank, sigma=config.sigma,
                             lr=config.lr, generations=1, antithetic=True, device="cpu", seed=config.seed,
                             fitness_shaping="normalized", weight_decay=0.0, elite_k=0)
        state = {}  # the generation's fitness and member counter, set by step
        with contextlib.redirect_stdout(None):  # the port prints progress
            return EggrollTrainer(module, port, lambda model, batch: float(
                state["fitness"](model(batch[next(state["member"])])[None])[0])), state

    def step(self, built, inputs, fitness) -> None:
        trainer, state = built
        state.update(fitness=fitness, member=iter(range(len(inputs))))
        with contextlib.redirect_stdout(None):
            trainer.evolve([inputs])
