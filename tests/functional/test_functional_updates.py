"""update.*: ``do_updates`` against jax_reference for every noiser, solver, dtype and option
(kind ``reduction``: the estimates sum over members), plus the behaviours upstream fixes exactly
(zero updates for EMB_PARAM/EXCLUDED, freeze_nonlora, batched == plain)."""
from __future__ import annotations

import jax
import optax
import pytest
import torch

import jax_reference.models.common as jcommon
import jax_reference.noiser as jnoiser
from conformance.spec import PERTURBING_NOISERS
from conformance.tolerances import assert_parity, assert_tree_parity
from eggroll_torch import optim, tree
from eggroll_torch.models import common
from eggroll_torch import noiser as tnoiser
from parity_support import DEVICES, jax_key, key, matrix, population, random_tensor, to_jax

SIGMA = 0.2
LR = 0.05
N = 8


def _params(dtype, device="cpu"):
    """A tree with every es class and an ``(in, out)`` TMM-style matrix."""
    params = {
        "emb": random_tensor(20, (6, 3), dtype, device),
        "frozen": random_tensor(21, (2, 2), dtype, device),
        "layer": {"bias": random_tensor(22, (4,), dtype, device), "weight": random_tensor(23, (4, 3), dtype, device)},
        "tmm": random_tensor(24, (3, 5), dtype, device),
    }
    es_map = {"emb": common.EMB_PARAM, "frozen": common.EXCLUDED,
              "layer": {"bias": common.PARAM, "weight": common.MM_PARAM}, "tmm": common.MM_PARAM}
    scan_map = jax.tree.map(lambda _: (), es_map)
    return params, es_map, scan_map


def _step(name, params, es_map, scan_map, fitness_seed=0, group_size=0, device="cpu", epoch=1, **options):
    """One do_updates step in both frameworks from fresh solver state; returns (torch, jax) params."""
    solver_name = options.pop("solver", "sgd")
    solver_kwargs = options.pop("solver_kwargs", {})
    jparams = jax.tree.map(to_jax, params)
    tkeys = common.simple_es_tree_key(params, key(3, device), scan_map)
    jkeys = jcommon.simple_es_tree_key(jparams, jax_key(key(3)), scan_map)
    count = N if name != "eggrollbs" else group_size
    torch_pop, jax_pop = population(count, epoch=epoch, device=device)
    fitness = random_tensor(fitness_seed, (count,), torch.float32, device)
    options = dict(rank=2, noise_reuse=1, group_size=group_size) | options
    jcls, tcls = jnoiser.all_noisers[name], tnoiser.all_noisers[name]
    jf, jn = jcls.init_noiser(jparams, SIGMA, LR, solver=getattr(optax, solver_name), solver_kwargs=solver_kwargs,
                              **options)
    tf, tn = tcls.init_noiser(params, SIGMA, LR, solver=getattr(optim, solver_name), solver_kwargs=solver_kwargs,
                              **options)
    _, jnew = jcls.do_updates(jf, jn, jparams, jkeys, to_jax(fitness), jax_pop, es_map)
    _, tnew = tcls.do_updates(tf, tn, params, tkeys, fitness, torch_pop, es_map)
    return tnew, jnew


F32, BF16, F16 = torch.float32, torch.bfloat16, torch.float16
DEFAULT = {(name, F32) for name in PERTURBING_NOISERS} | {("eggroll", BF16), ("eggroll", F16), ("sparse", BF16)}


@pytest.mark.parametrize("name, dtype", matrix(DEFAULT, PERTURBING_NOISERS, [F32, BF16, F16]))
def test_update_matches_reference(name, dtype):
    params, es_map, scan_map = _params(dtype)
    tnew, jnew = _step(name, params, es_map, scan_map, group_size=4 if name == "eggrollbs" else 0)
    assert_tree_parity(tnew, jnew, "reduction", what=f"{name} update")


@pytest.mark.parametrize("solver, solver_kwargs", [
    ("sgd", {}), ("sgd", {"momentum": 0.9}), ("sgd", {"momentum": 0.9, "nesterov": True}),
    ("adam", {}), ("adamw", {"b1": 0.9, "b2": 0.999}),
])
def test_update_solvers(solver, solver_kwargs):
    params, es_map, scan_map = _params(torch.float32)
    tnew, jnew = _step("eggroll", params, es_map, scan_map, solver=solver, solver_kwargs=solver_kwargs)
    assert_tree_parity(tnew, jnew, "reduction", what=f"{solver} update")


@pytest.mark.parametrize("noise_reuse, group_size, freeze_nonlora", matrix(
    {(0, 0, False), (3, 4, True), (1, 4, False), (0, 0, True)}, [0, 1, 3], [0, 4], [False, True]))
def test_update_options(noise_reuse, group_size, freeze_nonlora):
    params, es_map, scan_map = _params(torch.float32)
    tnew, jnew = _step("eggroll", params, es_map, scan_map, epoch=4, noise_reuse=noise_reuse,
                       group_size=group_size, freeze_nonlora=freeze_nonlora)
    assert_tree_parity(tnew, jnew, "reduction", what="update")
    if freeze_nonlora:
        assert torch.equal(tnew["layer"]["bias"], params["layer"]["bias"])


def test_update_scan_stacked_leaves():
    """A leaf stacking 3 layers (scan_map ``(0,)``) gets one key per layer and a per-layer update."""
    params = {"stack": random_tensor(30, (3, 4, 5), torch.float32), "bias": random_tensor(31, (3, 4), torch.float32)}
    es_map = {"stack": common.MM_PARAM, "bias": common.PARAM}
    scan_map = {"stack": (0,), "bias": (0,)}
    keys = common.simple_es_tree_key(params, key(3), scan_map)
    assert keys["stack"].shape == (3, 2)
    tnew, jnew = _step("eggroll", params, es_map, scan_map)
    assert_tree_parity(tnew, jnew, "reduction", what="scanned update")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scan", [False, True])
def test_update_batched_equals_plain(device, scan):
    """``use_batched_update`` groups same-shaped leaves; results equal the leaf-by-leaf path."""
    shape = (2, 4, 3) if scan else (4, 3)
    params = {"a": random_tensor(40, shape, torch.float32, device),
              "b": random_tensor(41, shape, torch.float32, device),
              "c": random_tensor(42, (4,), torch.float32, device),
              "d": random_tensor(43, (4,), torch.float32, device)}
    es_map = {"a": common.MM_PARAM, "b": common.MM_PARAM, "c": common.PARAM, "d": common.PARAM}
    scan_map = {"a": (0,) if scan else (), "b": (0,) if scan else (), "c": (), "d": ()}
    keys = common.simple_es_tree_key(params, key(5, device), scan_map)
    pop, _ = population(N, device=device)
    fitness = random_tensor(1, (N,), torch.float32, device)
    results = []
    for batched in (False, True):
        frozen, nparams = tnoiser.eggroll.EggRoll.init_noiser(params, SIGMA, LR, rank=2, use_batched_update=batched)
        results.append(tnoiser.eggroll.EggRoll.do_updates(frozen, nparams, params, keys, fitness, pop, es_map)[1])
    # On CPU both paths run the same kernels, bit for bit; cuBLAS picks a different algorithm for
    # a batched product than for a single one, so on CUDA they agree to summation order only.
    kind = "exact" if device == "cpu" else "reduction"
    for plain, batched in zip(tree.leaves(results[0]), tree.leaves(results[1])):
        assert_parity(batched, plain, kind, dtype="float32", what="batched vs plain update")


def test_update_batched_matches_reference():
    params, es_map, scan_map = _params(torch.float32)
    tnew, jnew = _step("eggroll", params, es_map, scan_map, use_batched_update=True)
    assert_tree_parity(tnew, jnew, "reduction", what="batched update")


@pytest.mark.parametrize("name", PERTURBING_NOISERS)
def test_update_emb_and_excluded_unchanged(name):
    """EMB_PARAM and EXCLUDED leaves get a zero gradient: plain SGD leaves them bit-identical."""
    params, es_map, scan_map = _params(torch.float32)
    tnew, _ = _step(name, params, es_map, scan_map, group_size=4 if name == "eggrollbs" else 0)
    assert torch.equal(tnew["emb"], params["emb"]) and torch.equal(tnew["frozen"], params["frozen"])
    assert not torch.equal(tnew["layer"]["weight"], params["layer"]["weight"])


def test_update_is_functional():
    """do_updates returns new params and a new noiser_params dict; its arguments stay untouched."""
    params, es_map, scan_map = _params(torch.float32)
    before = tree.map(torch.clone, params)
    frozen, nparams = tnoiser.eggroll.EggRoll.init_noiser(params, SIGMA, LR, solver=optim.adam)
    state_before = tree.map(torch.clone, nparams["opt_state"])
    keys = common.simple_es_tree_key(params, key(0), scan_map)
    pop, _ = population(N)
    new_nparams, _ = tnoiser.eggroll.EggRoll.do_updates(frozen, nparams, params, keys,
                                                         random_tensor(0, (N,), torch.float32), pop, es_map)
    assert new_nparams is not nparams and int(new_nparams["opt_state"][0].count) == 1
    for a, b in zip(tree.leaves((params, nparams["opt_state"])), tree.leaves((before, state_before))):
        assert torch.equal(a, b)


def test_update_scales_with_sigma_not_inverse():
    """Upstream's gradient is ``mean(f * noise) * sqrt(N)``: doubling sigma doubles an SGD step."""
    param = {"w": torch.zeros(3)}
    es_map, keys = {"w": common.PARAM}, common.simple_es_tree_key({"w": torch.zeros(3)}, key(1), {"w": ()})
    pop, _ = population(N)
    fitness = random_tensor(2, (N,), torch.float32)
    steps = []
    for sigma in (0.1, 0.2):
        frozen, nparams = tnoiser.eggroll.EggRoll.init_noiser(param, sigma, 1.0)
        steps.append(tnoiser.eggroll.EggRoll.do_updates(frozen, nparams, param, keys, fitness, pop, es_map)[1]["w"])
    assert_parity(steps[1], 2 * steps[0], "float32_other_ops", what="step at twice the sigma")


def test_update_eggrollbs_uses_group_directions():
    """EggRollBS: convert_fitnesses gives G values and the update takes G members' iterinfos."""
    params, es_map, scan_map = _params(torch.float32)
    tcls = tnoiser.eggroll_baseline_subtraction.EggRollBS
    frozen, nparams = tcls.init_noiser(params, SIGMA, LR, group_size=4, rank=2)
    shaped = tcls.convert_fitnesses(frozen, nparams, random_tensor(3, (12,), torch.float32))
    assert shaped.shape == (4,) and shaped[0] == 0 and shaped[1] == 0
    expected = jnoiser.all_noisers["eggrollbs"].convert_fitnesses(
        {"group_size": 4}, {}, to_jax(random_tensor(3, (12,), torch.float32)))
    assert_parity(shaped, expected, "float32_rederived", what="EggRollBS shaped fitnesses")
    keys = common.simple_es_tree_key(params, key(0), scan_map)
    pop, _ = population(4)
    tcls.do_updates(frozen, nparams, params, keys, shaped, pop, es_map)


def test_update_float64_matches_x64_reference():
    """float64 params against JAX with x64 enabled: init, noise and one adam step."""
    with jax.enable_x64(True):
        init = common.MLP.rand_init(key(0), in_dim=3, out_dim=2, hidden_dims=[5], use_bias=True,
                                    activation="relu", dtype=torch.float64)
        jinit = jcommon.MLP.rand_init(jax_key(key(0)), in_dim=3, out_dim=2, hidden_dims=[5], use_bias=True,
                                      activation="relu", dtype="float64")
        assert_tree_parity(init.params, jinit.params, "exact", what="float64 init")
        tnew, jnew = _step("eggroll", init.params, init.es_map, init.scan_map, solver="adam")
        assert_tree_parity(tnew, jnew, "reduction", what="float64 update")


def test_update_accepts_torch_optimizer_class():
    """A ``torch.optim`` class as ``solver`` (outside the parity guarantee): torch SGD takes the
    same step as ``optim.sgd``."""
    params, es_map, scan_map = _params(torch.float32)
    keys = common.simple_es_tree_key(params, key(3), scan_map)
    pop, _ = population(N)
    fitness = random_tensor(0, (N,), torch.float32)
    results = []
    for solver in (torch.optim.SGD, optim.sgd):
        frozen, nparams = tnoiser.eggroll.EggRoll.init_noiser(params, SIGMA, LR, rank=2, solver=solver)
        results.append(tnoiser.eggroll.EggRoll.do_updates(frozen, nparams, params, keys, fitness, pop, es_map)[1])
    assert_tree_parity(results[0], results[1], "float32_other_ops", what="torch.optim.SGD step")
