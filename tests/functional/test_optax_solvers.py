"""optim.resolve_solver with optax's factories, as upstream's examples pass them
(``solver=optax.adamw``): each maps to eggroll_torch's own implementation and gives the same bits
as the solver's name; optax callables with no equivalent, and already-built transformations, are
rejected with errors that name ``solver``."""
from __future__ import annotations

import copy
import functools
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from conformance.tolerances import assert_tree_parity
from eggroll_torch import optim
from eggroll_torch import noiser as tnoiser
from eggroll_torch.models import common
from eggroll_torch.nn import EggrollTrainer

optax = pytest.importorskip("optax", reason="the optax factories under test come from optax")

# Below the skip: these need jax, which is only sure to be installed where optax is.
import jax  # noqa: E402
import jax_reference.models.common as jcommon  # noqa: E402
import jax_reference.noiser as jnoiser  # noqa: E402
from parity_support import jax_key, key, population, random_tensor, to_jax  # noqa: E402

SIGMA = 0.2
LR = 0.05
N = 8
STEPS = 3

# (optax factory, its eggroll_torch factory, keyword arguments the mapping binds)
MAPPING = [
    pytest.param(optax.sgd, optim.sgd, {}, id="sgd"),
    pytest.param(optax.adam, optim.adam, {}, id="adam"),
    pytest.param(optax.adamw, optim.adamw, {}, id="adamw"),
    pytest.param(optax.nadam, optim.adam, {"nesterov": True}, id="nadam"),
    pytest.param(optax.nadamw, optim.adamw, {"nesterov": True}, id="nadamw"),
]

# (optax solver, solver_kwargs, the same solver by name, its solver_kwargs)
SAME_AS_NAME = [
    pytest.param(optax.sgd, {}, "sgd", {}, id="sgd"),
    pytest.param(optax.sgd, {"momentum": 0.9, "nesterov": True}, "sgd", {"momentum": 0.9, "nesterov": True},
                 id="sgd-nesterov-momentum"),
    pytest.param(optax.adam, {}, "adam", {}, id="adam"),
    pytest.param(optax.adam, {"b1": 0.8, "b2": 0.99, "eps": 1e-6}, "adam", {"b1": 0.8, "b2": 0.99, "eps": 1e-6},
                 id="adam-betas-eps"),
    pytest.param(optax.adamw, {"b1": 0.9, "b2": 0.999}, "adamw", {"b1": 0.9, "b2": 0.999}, id="adamw"),
    pytest.param(optax.adamw, {"weight_decay": 0.1}, "adamw", {"weight_decay": 0.1}, id="adamw-decay"),
    pytest.param(optax.nadam, {}, "adam", {"nesterov": True}, id="nadam"),
    pytest.param(optax.nadamw, {"weight_decay": 0.1}, "adamw", {"weight_decay": 0.1, "nesterov": True},
                 id="nadamw-decay"),
    pytest.param(functools.partial(optax.adamw, weight_decay=0.1), {"b1": 0.8},
                 "adamw", {"weight_decay": 0.1, "b1": 0.8}, id="partial-adamw"),
]

UNMAPPED = [
    pytest.param(optax.lion, "optax.lion", id="lion"),
    pytest.param(optax.adagrad, "optax.adagrad", id="adagrad"),
    pytest.param(functools.partial(optax.lion, b1=0.8), "optax.lion", id="partial-lion"),
    pytest.param(optax.scale_by_adam, "optax.scale_by_adam", id="scale_by_adam"),
]

def _params():
    params = {
        "emb": random_tensor(20, (6, 3), torch.float32),
        "frozen": random_tensor(21, (2, 2), torch.float32),
        "layer": {"bias": random_tensor(22, (4,), torch.float32), "weight": random_tensor(23, (4, 3), torch.float32)},
    }
    es_map = {"emb": common.EMB_PARAM, "frozen": common.EXCLUDED,
              "layer": {"bias": common.PARAM, "weight": common.MM_PARAM}}
    return params, es_map, jax.tree.map(lambda _: (), es_map)


def _train(solver, solver_kwargs):
    """``STEPS`` EGGROLL updates from fresh solver state; returns the final params and noiser_params."""
    params, es_map, scan_map = _params()
    keys = common.simple_es_tree_key(params, key(3), scan_map)
    frozen, noiser_params = tnoiser.eggroll.EggRoll.init_noiser(params, SIGMA, LR, solver=solver,
                                                                solver_kwargs=solver_kwargs, rank=2, noise_reuse=1)
    for step in range(STEPS):
        pop, _ = population(N, epoch=step)
        fitness = random_tensor(step, (N,), torch.float32)
        noiser_params, params = tnoiser.eggroll.EggRoll.do_updates(frozen, noiser_params, params, keys, fitness,
                                                                   pop, es_map)
    return params, noiser_params


@pytest.mark.parametrize("factory, mapped, bound", MAPPING)
def test_optax_factory_maps_to_eggroll_torch(factory, mapped, bound):
    resolved = optim.resolve_solver(factory)
    if bound:
        assert isinstance(resolved, functools.partial)
        assert resolved.func is mapped and resolved.args == () and resolved.keywords == bound
    else:
        assert resolved is mapped is optim.SOLVERS[factory.__name__]


def test_optax_partial_keeps_its_arguments():
    resolved = optim.resolve_solver(functools.partial(optax.adamw, 0.1, weight_decay=0.5))
    assert resolved.func is optim.adamw and resolved.args == (0.1,) and resolved.keywords == {"weight_decay": 0.5}


@pytest.mark.parametrize("solver, solver_kwargs, name, name_kwargs", SAME_AS_NAME)
def test_optax_solver_same_bits_as_name(solver, solver_kwargs, name, name_kwargs):
    got_params, got_state = _train(solver, solver_kwargs)
    want_params, want_state = _train(name, name_kwargs)
    assert_tree_parity(got_params, want_params, "bits", what=f"params with {solver}")
    assert_tree_parity(got_state, want_state, "bits", what=f"noiser_params with {solver}")


def test_optax_adam_tracks_jax_reference():
    """The same run with ``solver=optax.adam`` in jax_reference (real optax) and eggroll_torch."""
    params, es_map, scan_map = _params()
    jparams = jax.tree.map(to_jax, params)
    tkeys = common.simple_es_tree_key(params, key(3), scan_map)
    jkeys = jcommon.simple_es_tree_key(jparams, jax_key(key(3)), scan_map)
    options = {"solver": optax.adam, "solver_kwargs": {"b1": 0.8}, "rank": 2, "noise_reuse": 1}
    jcls, tcls = jnoiser.all_noisers["eggroll"], tnoiser.all_noisers["eggroll"]
    jf, jn = jcls.init_noiser(jparams, SIGMA, LR, **options)
    tf, tn = tcls.init_noiser(params, SIGMA, LR, **options)
    for step in range(STEPS):
        torch_pop, jax_pop = population(N, epoch=step)
        fitness = random_tensor(step, (N,), torch.float32)
        jn, jparams = jcls.do_updates(jf, jn, jparams, jkeys, to_jax(fitness), jax_pop, es_map)
        tn, params = tcls.do_updates(tf, tn, params, tkeys, fitness, torch_pop, es_map)
        assert_tree_parity(params, jparams, "trajectory", what=f"optax.adam params, step {step}")


def _net():
    return nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))


def test_trainer_accepts_optax_adamw():
    inputs = random_tensor(7, (N, 5), torch.float32)
    net = _net()
    solver_kwargs = {"b1": 0.9, "b2": 0.99, "weight_decay": 0.01}
    trainers = [EggrollTrainer(copy.deepcopy(net), SIGMA, LR, population_size=N, rank=2, solver=solver,
                               solver_kwargs=solver_kwargs, seed=0) for solver in (optax.adamw, "adamw")]
    for trainer in trainers:
        for _ in range(STEPS):
            trainer.step(lambda pop: pop(inputs).sum(-1))
    got, want = (dict(t.module.named_parameters()) for t in trainers)
    assert_tree_parity(got, want, "bits", what="EggrollTrainer params with optax.adamw")
    assert_tree_parity(trainers[0].noiser_params, trainers[1].noiser_params, "bits", what="solver state")


@pytest.mark.parametrize("solver, label", UNMAPPED)
def test_unmapped_optax_factory_rejected(solver, label):
    message = rf"^solver: {label} has no eggroll_torch equivalent; use one of \['adam', 'adamw', 'sgd'\]"
    with pytest.raises(ValueError, match=message):
        optim.resolve_solver(solver)
    params, _, _ = _params()
    with pytest.raises(ValueError, match=message):
        tnoiser.eggroll.EggRoll.init_noiser(params, SIGMA, LR, solver=solver)
    net = _net()
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(ValueError, match=message):
        EggrollTrainer(net, SIGMA, LR, population_size=N, solver=solver)
    assert all(torch.equal(p, before[path]) for path, p in net.state_dict().items())


@pytest.mark.parametrize("built", [optax.adam(1e-3), optax.sgd(0.1, momentum=0.9), optim.adamw(1e-3)],
                         ids=["optax.adam", "optax.sgd", "optim.adamw"])
def test_built_transformation_rejected(built):
    message = r"^solver must be a factory called as solver\(lr, \*\*solver_kwargs\).*pass e\.g\. optax\.adam"
    with pytest.raises(TypeError, match=message):
        optim.resolve_solver(built)
    params, _, _ = _params()
    with pytest.raises(TypeError, match=message):
        tnoiser.eggroll.EggRoll.init_noiser(params, SIGMA, LR, solver=built)
    with pytest.raises(TypeError, match=message):
        EggrollTrainer(_net(), SIGMA, LR, population_size=N, solver=built)


def test_other_solvers_unchanged():
    def custom(learning_rate):
        return optim.sgd(learning_rate)

    partial = functools.partial(optim.adam, b1=0.8)
    assert optim.resolve_solver(None) is optim.sgd
    assert optim.resolve_solver("adamw") is optim.adamw
    assert optim.resolve_solver(custom) is custom
    assert optim.resolve_solver(partial) is partial
    assert optim.resolve_solver(torch.optim.SGD) is not torch.optim.SGD
    with pytest.raises(ValueError, match=r"^solver: unknown name 'lion'"):
        optim.resolve_solver("lion")
    with pytest.raises(TypeError, match=r"^solver must be None, a name in"):
        optim.resolve_solver(3)


def test_eggroll_torch_does_not_import_optax():
    code = ("import sys, eggroll_torch.optim, eggroll_torch.noiser, eggroll_torch.nn; "
            "sys.exit('optax' in sys.modules)")
    repo = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=repo, check=False).returncode == 0
