"""nn.mlp_matches_functional: the functional MLP wrapped as an ``nn.Sequential`` gets the same keys,
the same population outputs and the same updates as the functional path (bit for bit where the
trainer calls the functional update; within the ``reduction`` tolerance per step where its pair
engine collapses antithetic pairs, i.e. EGGROLL with an even population); and (slow) upstream's
10-epoch MLP example run through the nn trainer tracks jax_reference's run."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from conformance.tolerances import assert_parity
from eggroll_torch import random as es_random
from eggroll_torch import tree
from eggroll_torch.models import common
from eggroll_torch.nn import EggrollTrainer
from eggroll_torch.noiser import all_noisers
from eggroll_torch.optim import resolve_solver

from nn_support import DEVICES

N = 8
# nn.Sequential(Linear, ReLU, Linear, ReLU, Linear) names its Linear layers 0, 2, 4; the
# functional MLP names them 0, 1, 2. Both sort in the same order, so leaf t of one tree gets
# the key of leaf t of the other.
SEQ_INDEX = {"0": "0", "1": "2", "2": "4"}


def _functional_mlp(dtype, device):
    key = es_random.fold_in(es_random.key(0, device=device), 0)
    frozen_params, params, scan_map, es_map = common.MLP.rand_init(
        key, in_dim=3, out_dim=1, hidden_dims=[6, 5], use_bias=True, activation="relu", dtype=dtype,
    )
    return frozen_params, params, scan_map, es_map


def _as_sequential(params) -> nn.Sequential:
    layers = []
    for t in ("0", "1", "2"):
        weight = params[t]["weight"]
        linear = nn.Linear(weight.shape[1], weight.shape[0], dtype=weight.dtype, device=weight.device)
        with torch.no_grad():
            linear.weight.copy_(weight)
            linear.bias.copy_(params[t]["bias"])
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def _seq_path(path: str) -> str:
    layer, leaf = path.split(".")
    return f"{SEQ_INDEX[layer]}.{leaf}"


CASES = [
    pytest.param("eggroll", "adamw", {}, torch.float32, id="eggroll-adamw-f32"),
    pytest.param("eggroll", "sgd", {"group_size": 4, "freeze_nonlora": True}, torch.float32,
                 id="eggroll-groups-frozen"),
    pytest.param("eggroll", "adam", {"noiser_kwargs": {"use_batched_update": True}}, torch.float64,
                 id="eggroll-batched-f64"),
    pytest.param("eggroll", "sgd", {}, torch.bfloat16, id="eggroll-sgd-bf16"),
    pytest.param("eggroll", "sgd", {}, torch.float16, id="eggroll-sgd-f16"),
    pytest.param("alteggroll", "adam", {}, torch.float32, id="alteggroll"),
    pytest.param("open_es", "sgd", {}, torch.float32, id="open_es"),
    pytest.param("sparse", "sgd", {}, torch.float32, id="sparse"),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("noiser, solver, options, dtype", CASES)
def test_nn_mlp_matches_functional(noiser, solver, options, dtype, device):
    frozen_params, params, scan_map, es_map = _functional_mlp(dtype, device)
    es_key = es_random.fold_in(es_random.key(0, device=device), 1)
    settings = dict(rank=2, noise_reuse=1, solver=solver) | options
    noiser_kwargs = settings.pop("noiser_kwargs", {})
    trainer = EggrollTrainer(
        _as_sequential(params), 0.2, 0.03, population_size=N, noiser=noiser, es_key=es_key,
        noiser_kwargs=noiser_kwargs, **settings,
    )
    cls = all_noisers[noiser]
    keys = common.simple_es_tree_key(params, es_key, scan_map)
    frozen, noiser_params = cls.init_noiser(
        params, 0.2, 0.03, **(settings | noiser_kwargs | {"solver": resolve_solver(solver)})
    )
    # The pair engine sums over pairs instead of members (same estimate, other summation order)
    # and adds bias and correction in the matmul's epilogue (fewer roundings).
    engine = cls is all_noisers["eggroll"]
    update_kind, forward_kind = ("reduction", "fused") if engine else ("exact", "reduction")
    for path, key in _flat(keys).items():
        assert_parity(trainer.keys[_seq_path(path)], key, "exact", what=f"key of {path}")

    generator = torch.Generator().manual_seed(0)
    for epoch in range(3):
        x = torch.randn(N, 3, generator=generator).to(device=device, dtype=dtype)
        iterinfo = trainer.iterinfo()
        out = trainer.population()(x)
        expected = common.MLP.forward(cls, frozen, noiser_params, frozen_params, params, keys, iterinfo, x)
        assert_parity(out, expected, forward_kind, what=f"population outputs, epoch {epoch}")

        raw = -((out.float() - 2) ** 2)[:, 0]
        trainer.update(raw)
        fitnesses = cls.convert_fitnesses(frozen, noiser_params, raw)
        noiser_params, params = cls.do_updates(frozen, noiser_params, params, keys, fitnesses, iterinfo, es_map)
        current = dict(trainer.module.named_parameters())
        for path, value in _flat(params).items():
            assert_parity(current[_seq_path(path)], value, update_kind, what=f"{path} after epoch {epoch}")
        # Each epoch then starts both sides from the trainer's parameters, so every step is held
        # to one step's tolerance rather than an accumulated one.
        params = {layer: {leaf: current[_seq_path(f"{layer}.{leaf}")].detach().clone() for leaf in leaves}
                  for layer, leaves in params.items()}


def _flat(nested) -> dict:
    leaves, _ = tree.flatten(nested)
    paths = [f"{layer}.{leaf}" for layer in sorted(nested) for leaf in sorted(nested[layer])]
    return dict(zip(paths, leaves))


@pytest.mark.slow
def test_nn_mlp_example_tracks_jax_reference():
    """Upstream's example (EGGROLL, adamw b1=0.9 b2=0.999, rank 8, 64 members, sigma 0.2, lr 0.03,
    10 epochs) through the nn trainer, computing its own forwards and fitnesses."""
    import jax

    from jax_reference.examples.mlp_e2e import run_mlp_example

    run = run_mlp_example(epochs=10)
    initial = jax.tree.map(lambda a: torch.from_numpy(np.array(a)), run.initial_params)
    es_key = es_random.fold_in(es_random.key(0), 1)
    trainer = EggrollTrainer(
        _as_sequential(initial), 0.2, 0.03, population_size=64, rank=8, solver="adamw",
        solver_kwargs={"b1": 0.9, "b2": 0.999}, es_key=es_key,
    )
    for epoch in range(10):
        x = torch.from_numpy(np.array(run.inputs[epoch]))
        metrics = trainer.step(lambda pop: -((pop(x) - 2) ** 2)[:, 0])
        assert metrics["epoch"] == epoch
        for layer in ("0", "1", "2"):
            for leaf in ("weight", "bias"):
                got = dict(trainer.module.named_parameters())[f"{SEQ_INDEX[layer]}.{leaf}"]
                assert_parity(got, run.params[epoch][layer][leaf], "trajectory", what=f"{layer}.{leaf} epoch {epoch}")
