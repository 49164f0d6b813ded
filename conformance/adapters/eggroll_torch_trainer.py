"""Backend ``eggroll_torch-trainer``: the public ``eggroll_torch.nn.EggrollTrainer``, as users run it.

Every operation builds a small ``nn.Module`` (a probe), hands it to an ``EggrollTrainer`` and
reads the result through the trainer's public API only: ``population(members)`` for forwards,
``keys`` for the key tree, ``step``/``update`` for training. The ES key, a parameter's key and
the epoch are set with ``load_state_dict`` (the documented way to resume a run), so the checks'
keys and epochs reach the trainer exactly.

What the public API cannot express is reported as unsupported, not emulated: the trainer's
members are the contiguous thread ids ``members.start .. members.stop - 1`` of one epoch
(``permuted`` and ``subset`` thread sets, per-member epochs), it keeps no scan-stacked leaves,
and it shapes raw fitnesses itself (so ``do_updates`` from given shaped fitnesses is the
functional layer's operation, checked on ``eggroll_torch``). The low-rank factors are never
formed by the trainer's forward; its noise is checked through the forward (``forward.*``) and
through training (``trajectory.mlp_e2e``: upstream's example, ten ``EggrollTrainer.step`` calls
on an ``nn.Sequential``).
"""
from __future__ import annotations

import numpy as np

from .. import trees
from ..spec import NOISERS, Trajectory
from . import base
from .eggroll_torch import EggrollTorchAdapter


class _Leaf:
    """Probe modules, built lazily so that importing this file needs no torch."""

    @staticmethod
    def linear(weight):
        from torch import nn

        layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False, dtype=weight.dtype, device=weight.device)
        layer.weight.data.copy_(weight)
        return layer

    @staticmethod
    def parameter(value):
        from torch import nn

        class Parameter(nn.Module):
            """One raw parameter (``PARAM``); the forward returns its value for the member."""

            def __init__(self):
                super().__init__()
                self.value = nn.Parameter(value.clone())

            def forward(self):
                return self.value.clone()

        return Parameter()

    @staticmethod
    def tree(params):
        from torch import nn

        module = nn.Module()
        for name, value in params.items():
            if isinstance(value, dict):
                module.add_module(name, _Leaf.tree(value))
            else:
                module.register_parameter(name, nn.Parameter(value))
        return module


class EggrollTrainerAdapter(EggrollTorchAdapter):
    """``EggrollTrainer`` on ``device``; conversions are shared with the functional adapter."""

    capabilities = frozenset(
        {base.JAX_RNG, base.FORWARD, base.TREE_KEYS, base.TRAJECTORY}
        | {base.noiser_capability(n) for n in NOISERS}
        | {base.dtype_capability(d) for d in ("float32", "bfloat16", "float16")}
    )

    def __init__(self, device: str = "cpu"):
        super().__init__(device)
        self.name = "eggroll_torch-trainer" if device == "cpu" else f"eggroll_torch-trainer-{device}"

    # ---- the trainer as a user builds it -----------------------------------------------------
    @staticmethod
    def members(population) -> tuple[range, int]:
        """The trainer's ``members`` range and epoch for ``population``, or Unsupported."""
        threads, epochs = np.asarray(population.thread_ids), np.asarray(population.epochs)
        if (epochs != epochs[0]).any():
            raise base.Unsupported("EggrollTrainer evaluates one epoch at a time; this population mixes epochs")
        start = int(threads[0])
        if not np.array_equal(threads, np.arange(start, start + threads.shape[0])):
            raise base.Unsupported("EggrollTrainer's members are contiguous thread ids; this population's are not")
        return range(start, start + threads.shape[0]), int(epochs[0])

    def trainer(self, config, module, members: range, epoch: int, keys: dict):
        """An ``EggrollTrainer`` over ``module`` whose population covers ``members``, moved to
        ``epoch`` with ``keys`` (``{path: key words}``) through ``load_state_dict``."""
        from eggroll_torch.nn import EggrollTrainer

        size = members.stop
        if config.group_size:
            size = -(-size // config.group_size) * config.group_size
        own = ("rank", "group_size", "noise_reuse", "freeze_nonlora")
        options = dict(population_size=size, rank=config.rank, noiser=config.noiser, group_size=config.group_size,
                       noise_reuse=config.noise_reuse, freeze_nonlora=config.freeze_nonlora,
                       noiser_kwargs={k: v for k, v in config.init_kwargs().items() if k not in own},
                       **self.solver(config.solver))
        trainer = EggrollTrainer(module, config.sigma, config.lr, **options)
        state = trainer.state_dict()
        state["epoch"] = epoch
        for path, words in keys.items():
            state["keys"][path] = self.key(words)
        trainer.load_state_dict(state)
        return trainer

    # ---- operations --------------------------------------------------------------------------
    def do_mm(self, config, param, key, population, x):
        if population is None:
            raise base.Unsupported("EggrollTrainer always perturbs its population; an unperturbed forward "
                                   "is the module itself")
        members, epoch = self.members(population)
        trainer = self.trainer(config, _Leaf.linear(self.tensor(param)), members, epoch, {"weight": key})
        return self.out(trainer.population(members)(self.tensor(x)))

    def do_Tmm(self, config, param, key, population, x):
        raise base.Unsupported("nn modules multiply by weight.T (nn.Linear); upstream's do_Tmm has no module form")

    def noisy_standard(self, config, param, key, population):
        if population is None:
            raise base.Unsupported("EggrollTrainer always perturbs its population")
        members, epoch = self.members(population)
        trainer = self.trainer(config, _Leaf.parameter(self.tensor(param)), members, epoch, {"value": key})
        return self.out(trainer.population(members)())

    def tree_keys(self, params, base_key, scan_map):
        from eggroll_torch.nn import EggrollTrainer, nest

        if any(tuple(axes) for _, axes in trees.items(scan_map)):
            raise base.Unsupported("nn modules hold no scan-stacked leaves")
        module = _Leaf.tree(trees.map_leaves(self.tensor, params))
        trainer = EggrollTrainer(module, 0.1, 0.1, population_size=2, es_key=self.key(base_key))
        return trees.map_leaves(self.out, nest(trainer.keys))

    def mlp_trajectory(self, spec):
        from torch import nn

        from eggroll_torch import random
        from eggroll_torch.examples.mlp_e2e import regression_fitness, run_mlp_example
        from eggroll_torch.nn import EggrollTrainer

        if spec.noiser == "eggrollbs":
            raise base.Unsupported("eggrollbs needs population_size == group_size, which the example does not set")
        # The functional run gives the example's initial weights and each epoch's inputs; the
        # trainer computes its own forwards, fitnesses and updates from them.
        example = run_mlp_example(epochs=spec.num_epochs, num_envs=spec.num_envs, in_dim=spec.in_dim,
                                  hidden_dims=tuple(spec.hidden_dims), seed=spec.seed, device=self.device)
        names = sorted(example.initial_params, key=int)
        layers = []
        for name in names:
            weight, bias = example.initial_params[name]["weight"], example.initial_params[name]["bias"]
            layer = nn.Linear(weight.shape[1], weight.shape[0], dtype=weight.dtype, device=weight.device)
            layer.weight.data.copy_(weight)
            layer.bias.data.copy_(bias)
            layers += [layer, nn.ReLU()]
        model = nn.Sequential(*layers[:-1])
        es_key = random.fold_in(random.key(spec.seed, device=self.device), 1)
        trainer = EggrollTrainer(model, spec.sigma, spec.lr, population_size=spec.num_envs, rank=spec.rank,
                                 noiser=spec.noiser, noise_reuse=spec.noise_reuse, es_key=es_key,
                                 **self.solver(spec.solver))

        def snapshot():
            # Copies: the trainer updates these tensors in place, and a numpy view would follow.
            current = dict(trainer.module.named_parameters())
            return {name: {leaf: self.out(current[f"{2 * index}.{leaf}"].detach().clone())
                           for leaf in ("weight", "bias")}
                    for index, name in enumerate(names)}

        params, scores = [snapshot()], []
        for epoch in range(spec.num_epochs):
            x = example.inputs[epoch]
            raw = regression_fitness(trainer.population()(x))
            scores.append(self.out(raw.clone()))
            trainer.update(raw)
            params.append(snapshot())
        return Trajectory(params=params, scores=np.stack(scores))

