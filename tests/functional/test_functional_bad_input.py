"""validation.*: bad input raises a clear error naming the argument, before any state changes."""
from __future__ import annotations

import pytest
import torch

from conformance.spec import PERTURBING_NOISERS
from eggroll_torch import noiser as tnoiser
from eggroll_torch import optim, tree
from eggroll_torch.models import common
from parity_support import key, population, random_tensor

EggRoll = tnoiser.eggroll.EggRoll
N = 8


@pytest.fixture
def setup():
    init = common.MLP.rand_init(key(0), in_dim=3, out_dim=1, hidden_dims=[4], use_bias=True, activation="relu",
                                dtype="float32")
    keys = common.simple_es_tree_key(init.params, key(1), init.scan_map)
    frozen, nparams = EggRoll.init_noiser(init.params, 0.2, 0.1, rank=2, solver=optim.adamw)
    pop, _ = population(N)
    # One good step so the optimizer state is not all zeros.
    nparams, params = EggRoll.do_updates(frozen, nparams, init.params, keys, random_tensor(0, (N,), torch.float32),
                                         pop, init.es_map)
    return frozen, nparams, params, keys, pop, init.es_map


def _snapshot(nparams, params):
    return tree.map(torch.clone, (nparams["opt_state"], params))


def _assert_unchanged(snapshot, nparams, params):
    for a, b in zip(tree.leaves(snapshot), tree.leaves((nparams["opt_state"], params))):
        assert torch.equal(a, b)


BAD_UPDATES = [
    ("fitness length", lambda f, p: (f[:5], p), ValueError, "fitnesses has 5 entries"),
    ("NaN fitness", lambda f, p: (torch.where(torch.arange(N) == 3, float("nan"), f), p), ValueError, "finite"),
    ("inf fitness", lambda f, p: (torch.where(torch.arange(N) == 0, float("inf"), f), p), ValueError, "finite"),
    ("integer fitness", lambda f, p: (torch.arange(N), p), TypeError, "floating"),
    ("2-D fitness", lambda f, p: (f[None], p), ValueError, "1-D"),
    ("negative thread", lambda f, p: (f, (p[0], p[1] - 1)), ValueError, r"2\*\*31"),
    ("huge thread", lambda f, p: (f, (p[0], p[1] + 2**31)), ValueError, r"2\*\*31"),
    ("float threads", lambda f, p: (f, (p[0], p[1].float())), TypeError, "integers"),
    ("negative epoch", lambda f, p: (f, (p[0] - 1, p[1])), ValueError, "epoch"),
    ("scalar iterinfo", lambda f, p: (f, (0, 0)), ValueError, "population form"),
    ("fitness on another device", lambda f, p: (f.to("meta"), p), ValueError, "device"),
    ("length mismatch epochs", lambda f, p: (f, (p[0][:3], p[1])), ValueError, "same shape"),
]


@pytest.mark.parametrize("what, corrupt, error, message", BAD_UPDATES, ids=[b[0] for b in BAD_UPDATES])
def test_validation_rejected_update_changes_nothing(setup, what, corrupt, error, message):
    frozen, nparams, params, keys, pop, es_map = setup
    snapshot = _snapshot(nparams, params)
    fitness, iterinfos = corrupt(random_tensor(1, (N,), torch.float32), pop)
    with pytest.raises(error, match=message):
        EggRoll.do_updates(frozen, nparams, params, keys, fitness, iterinfos, es_map)
    _assert_unchanged(snapshot, nparams, params)


def test_validation_mismatched_trees(setup):
    frozen, nparams, params, keys, pop, es_map = setup
    snapshot = _snapshot(nparams, params)
    with pytest.raises(ValueError, match="base_keys"):
        EggRoll.do_updates(frozen, nparams, params, {"0": keys["0"]}, random_tensor(1, (N,), torch.float32), pop,
                           es_map)
    with pytest.raises(ValueError, match="es_map"):
        EggRoll.do_updates(frozen, nparams, params, keys, random_tensor(1, (N,), torch.float32), pop,
                           tree.map(lambda _: 7, es_map))
    _assert_unchanged(snapshot, nparams, params)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"rank": 0}, ValueError, "rank"),
    ({"rank": 1.5}, TypeError, "rank"),
    ({"group_size": -1}, ValueError, "group_size"),
    ({"noise_reuse": -2}, ValueError, "noise_reuse"),
    ({"solver": "lion"}, ValueError, "solver"),
    ({"solver": 5}, TypeError, "solver"),
    ({"solver_kwargs": [0.9]}, TypeError, "solver_kwargs"),
])
def test_validation_init_noiser(kwargs, error, message):
    with pytest.raises(error, match=message):
        EggRoll.init_noiser({"w": torch.zeros(2, 2)}, 0.2, 0.1, **kwargs)


@pytest.mark.parametrize("sigma", [0.0, -0.1, float("nan"), float("inf")])
@pytest.mark.parametrize("name", PERTURBING_NOISERS)
def test_validation_sigma(name, sigma):
    with pytest.raises(ValueError, match="sigma"):
        tnoiser.all_noisers[name].init_noiser({"w": torch.zeros(2, 2)}, sigma, 0.1)


def test_validation_unknown_noiser():
    with pytest.raises(ValueError, match="noiser"):
        tnoiser.get_noiser("eggroll2")
    assert tnoiser.get_noiser("reeggroll") is EggRoll


def test_validation_group_size_divides_population():
    frozen, nparams = EggRoll.init_noiser({}, 0.2, 0.1, group_size=3)
    with pytest.raises(ValueError, match="multiple of group_size=3"):
        EggRoll.convert_fitnesses(frozen, nparams, torch.zeros(8))
    bs = tnoiser.eggroll_baseline_subtraction.EggRollBS
    frozen, nparams = bs.init_noiser({}, 0.2, 0.1)
    with pytest.raises(ValueError, match="group_size"):
        bs.convert_fitnesses(frozen, nparams, torch.zeros(8))


def test_validation_raw_scores():
    frozen, nparams = EggRoll.init_noiser({}, 0.2, 0.1)
    with pytest.raises(ValueError, match="finite"):
        EggRoll.convert_fitnesses(frozen, nparams, torch.tensor([1.0, float("nan")]))
    with pytest.raises(TypeError, match="floating"):
        EggRoll.convert_fitnesses(frozen, nparams, torch.tensor([1, 2]))


def test_validation_forward_iterinfo():
    frozen, nparams = EggRoll.init_noiser({}, 0.2, 0.1, rank=2)
    param = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="thread_id"):
        EggRoll.do_mm(frozen, nparams, param, key(0), (0, -1), torch.zeros(4))
    with pytest.raises(TypeError, match="iterinfo"):
        EggRoll.do_mm(frozen, nparams, param, key(0), 3, torch.zeros(4))
    with pytest.raises(ValueError, match="N=4"):
        EggRoll.do_mm(frozen, nparams, param, key(0), population(4)[0], torch.zeros(3, 4))
