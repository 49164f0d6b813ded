"""Training behaviour against the reference: the claim "different random sequences but
equivalent statistical properties; results will differ but behavior is equivalent", tested.

Upstream's end-to-end example (:class:`conformance.spec.TrajectorySpec`: MLP ``3 -> 16 -> 16 ->
1``, relu, 64 members, rank 8, sigma 0.2, ``adamw(0.03, b1=0.9, b2=0.999)``, ``noise_reuse=0``,
fitness ``-(y - 2)**2``) runs for :data:`SEEDS` seeds on the reference (``jax_reference``) and on
the port, each seed from the same initial weights and the same input batches, so that only the
noise differs. The final models are scored on one fixed evaluation batch; a paired two one-sided
t-test (TOST) asks whether the mean score difference lies within a margin of :data:`MARGIN` of
the reference's mean improvement over the seeds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import stats
from ..adapters.base import Unsupported
from ..adapters.trainer import TrainerConfig
from ..spec import TrajectorySpec
from .base import TrainerCase, TrainerCheck, register

SEEDS = 64
EPOCHS = TrajectorySpec.num_epochs
MARGIN = 0.1
ALPHA = 0.05
EVALUATION = np.random.default_rng(2026).standard_normal((1024, TrajectorySpec.in_dim))


def spec_config(seed: int) -> TrainerConfig:
    """The example's settings as a :class:`TrainerConfig`."""
    spec = TrajectorySpec()
    return TrainerConfig(sigma=spec.sigma, lr=spec.lr, rank=spec.rank, population=spec.num_envs,
                         noise_reuse=spec.noise_reuse, solver=spec.solver.name,
                         solver_kwargs=spec.solver.kwargs, seed=seed)


def score(layers: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Mean fitness ``-(y - 2)**2`` of the relu MLP ``layers`` on the evaluation batch (float64)."""
    h = EVALUATION
    for i, (weight, bias) in enumerate(layers):
        h = h @ np.asarray(weight, np.float64).T + np.asarray(bias, np.float64)
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return float(np.mean(-((h[:, 0] - 2.0) ** 2)))


@dataclass
class ReferenceRun:
    """One seed of the example on the reference: initial and final layers, each epoch's inputs."""

    initial: list
    final: list
    inputs: list


def reference_runs(seeds: int) -> list[ReferenceRun]:
    """``jax_reference``'s example (the loop of :mod:`jax_reference.examples.mlp_e2e`) for
    seeds ``0 .. seeds - 1``, one jitted generation shared by all seeds (shaping inside the jit,
    so values agree with the eager-shaping example to float32 rounding, not bit for bit).

    Raises:
        Unsupported: JAX or the reference is not installed.
    """
    try:
        import jax
        import jax.numpy as jnp
        import optax

        from jax_reference.examples.mlp_e2e import regression_fitness
        from jax_reference.models import common
        from jax_reference.noiser import eggroll
    except ImportError as e:
        raise Unsupported(f"the JAX reference is needed for training runs: {e}") from e
    spec = TrajectorySpec()
    noiser, model = eggroll.EggRoll, common.MLP

    def init(seed):
        key = jax.random.key(seed)
        frozen_params, params, scan_map, es_map = model.rand_init(
            jax.random.fold_in(key, 0), in_dim=spec.in_dim, out_dim=1, hidden_dims=list(spec.hidden_dims),
            use_bias=True, activation="relu", dtype="float32")
        tree_key = common.simple_es_tree_key(params, jax.random.fold_in(key, 1), scan_map)
        return frozen_params, params, es_map, tree_key, jax.random.fold_in(key, 2)

    frozen_params, params0, es_map, _, _ = init(0)
    frozen, _ = noiser.init_noiser(params0, spec.sigma, spec.lr, solver=optax.adamw,
                                   solver_kwargs=spec.solver.kwargs_dict, rank=spec.rank)

    @jax.jit
    def generation(noiser_params, params, tree_key, epoch, inputs):
        iterinfo = (jnp.full(spec.num_envs, epoch, dtype=jnp.int32), jnp.arange(spec.num_envs))
        outputs = jax.vmap(lambda i, x: model.forward(noiser, frozen, noiser_params, frozen_params, params,
                                                      tree_key, i, x))(iterinfo, inputs)
        fitnesses = noiser.convert_fitnesses(frozen, noiser_params, regression_fitness(outputs))
        return noiser.do_updates(frozen, noiser_params, params, tree_key, fitnesses, iterinfo, es_map)

    runs = []
    for seed in range(seeds):
        _, params, _, tree_key, data_key = init(seed)
        _, noiser_params = noiser.init_noiser(params, spec.sigma, spec.lr, solver=optax.adamw,
                                              solver_kwargs=spec.solver.kwargs_dict, rank=spec.rank)
        initial, inputs = _layers(params), []
        for epoch in range(EPOCHS):
            data_key, batch_key = jax.random.split(data_key)
            batch = jax.random.normal(batch_key, (spec.num_envs, spec.in_dim))
            noiser_params, params = generation(noiser_params, params, tree_key, epoch, batch)
            inputs.append(np.asarray(batch))
        runs.append(ReferenceRun(initial, _layers(params), inputs))
    return runs


def _layers(params: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.array(params[k]["weight"]), np.array(params[k]["bias"])) for k in sorted(params, key=int)]


def port_final_layers(adapter, run, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The port trained from the reference run's initial weights on its input batches."""
    import torch
    from torch import nn

    initial = run.initial
    modules = []
    for i, (weight, bias) in enumerate(initial):
        layer = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(np.array(weight, np.float32)))
            layer.bias.copy_(torch.from_numpy(np.array(bias, np.float32)))
        modules += [layer] + ([nn.ReLU()] if i < len(initial) - 1 else [])
    model = nn.Sequential(*modules)
    trainer = adapter.build(model, spec_config(seed))
    population = TrajectorySpec.num_envs

    for inputs in run.inputs:
        x = torch.from_numpy(np.array(inputs, np.float32)).reshape(population, 1, -1)

        def fitness(outputs):
            return -((outputs.reshape(outputs.shape[0], -1)[:, 0] - 2.0) ** 2)

        adapter.step(trainer, x, _first(fitness, population))
    linear = [m for m in model if isinstance(m, nn.Linear)]
    return [(m.weight.detach().double().numpy(), m.bias.detach().double().numpy()) for m in linear]


def _first(fitness, population: int):
    """``fitness`` for the first ``population`` members of a generation, zeros after (a port
    that scores its updated model once more)."""
    seen = {"calls": 0}

    def wrapped(outputs):
        import torch

        start = seen["calls"]
        seen["calls"] += outputs.shape[0]
        values = fitness(outputs)
        keep = torch.arange(start, start + outputs.shape[0], device=values.device) < population
        return torch.where(keep, values, torch.zeros_like(values))

    return wrapped


@register
class Equivalence(TrainerCheck):
    id = "trajectory.equivalence"
    component = "Trajectory"
    mode = "statistical"
    summary = (f"after upstream's example (10 epochs), the port's models score like the reference's: paired TOST over "
               f"{SEEDS} seeds, margin {MARGIN:g} of the reference's mean improvement")
    power = (f"TOST at alpha={ALPHA} per side ({100 * (1 - 2 * ALPHA):.0f}% interval inside the margin); equivalence "
             "is shown only when the interval of the mean score difference is inside +-margin, so too few seeds or "
             "too much spread fail the check rather than pass it")

    def cases(self):
        return [TrainerCase("mlp_example", spec_config(0))]

    def judge(self, observer, case):
        runs = observer.memo(("reference_runs", SEEDS), lambda: reference_runs(SEEDS))
        initial = np.array([score(run.initial) for run in runs])
        reference = np.array([score(run.final) for run in runs])
        port = np.array([score(port_final_layers(observer.adapter, run, seed)) for seed, run in enumerate(runs)])
        margin = MARGIN * abs(float(np.mean(reference - initial)))
        verdict = stats.tost(port - reference, margin, ALPHA)
        low, high = verdict.interval
        detail = (f"mean score: initial {initial.mean():.4g}, reference {reference.mean():.4g}, "
                  f"port {port.mean():.4g}; "
                  f"difference {verdict.mean:.3g} (90% interval [{low:.3g}, {high:.3g}], sd {verdict.sd:.3g}) "
                  f"against margin +-{margin:.3g}, TOST p={verdict.p:.2g}")
        observer.notes[self.id] = detail
        return ([] if verdict.equivalent else [f"not shown equivalent: {detail}"]), abs(verdict.mean)
