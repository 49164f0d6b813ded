"""jax_reference against upstream HyperscaleES itself: identical arrays, bit for bit.

Both sides run the same probe code; only the modules differ (upstream's files loaded from
``$HYPERSCALEES_SRC`` by ``conftest.hs``, or ``jax_reference``). Eager runs are compared with
eager runs and jitted with jitted, since XLA's fusion choices may move the last bit between
the two modes. Every compared array goes through ``conftest.Ledger``, summarised at the end.
"""
from __future__ import annotations

import ast
import contextlib
import inspect
import io
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jax_reference
from conformance import spec
from conformance.tolerances import assert_same_bits, assert_tree_parity
from jax_reference.examples.mlp_e2e import run_mlp_example

# Skipped as a whole, with the reason, when HYPERSCALEES_SRC is unset (see conftest.py).
# Upstream's sparse update scatter-adds float32 values into half-precision arrays, which JAX
# deprecates with a FutureWarning; the arithmetic is what is compared here.
pytestmark = [
    pytest.mark.upstream,
    pytest.mark.filterwarnings("ignore:scatter inputs have incompatible types:FutureWarning"),
]
HERE = Path(__file__).parent

# name -> (module, class) under hyperscalees.noiser / jax_reference.noiser, each noiser once.
NOISERS = {name: spec.NOISERS[name] for name in ("noop", *spec.PERTURBING_NOISERS)}
LOW_RANK = {"eggroll", "eggrollbs", "alteggroll"}
SOLVERS = {
    "sgd": (optax.sgd, {}),
    "sgd_nesterov": (optax.sgd, {"momentum": 0.9, "nesterov": True}),
    "adam": (optax.adam, {}),
    "adamw": (optax.adamw, {"b1": 0.9, "b2": 0.999}),
}
DTYPES = ("float32", "bfloat16", "float16")
SHAPES = ((1, 1), (1, 6), (6, 1), (3, 7), (8, 8), (16, 4))
N_MEMBERS = 8
# Upstream names deliberately absent from jax_reference: neither is called anywhere upstream.
UNUSED_UPSTREAM = {
    ("eggroll_baseline_subtraction", "_is_zero_noise"),
    ("sparse", "_simple_lora_update"),
}


@contextlib.contextmanager
def quiet():
    """Swallow upstream's trace-time ``print`` (``LORA UPDATE ...``)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def side_of(package):
    return SimpleNamespace(noiser=package.noiser, common=package.models.common)


@pytest.fixture(scope="module")
def sides(hs):
    return side_of(hs), side_of(jax_reference)


# ---------------------------------------------------------------- noiser probe


@dataclass(frozen=True)
class Case:
    noiser: str
    dtype: str = "float32"
    shape: tuple = (3, 7)
    seed: int = 0
    rank: int = 2
    noise_reuse: int = 0
    group_size: int = 0
    freeze_nonlora: bool = False
    solver: str = "sgd"
    batched: bool = False
    sigma_array: bool = False


def make_inputs(case):
    """Params, maps and data shared by both sides (drawn here, not by either implementation)."""
    a, b = case.shape
    k = jax.random.split(jax.random.key(1000 + case.seed), 12)
    dt = jnp.dtype(case.dtype)
    params = {
        "mm": jax.random.normal(k[0], (a, b)).astype(dt),
        "bias": jax.random.normal(k[2], (a,)).astype(dt),
        "emb": jax.random.normal(k[3], (5, b)).astype(dt),
        "excl": jax.random.normal(k[4], (3,)).astype(dt),
        "stack": jax.random.normal(k[5], (3, a, b)).astype(dt),
        "stack_bias": jax.random.normal(k[6], (3, a)).astype(dt),
    }
    es_map = {"mm": 1, "bias": 0, "emb": 2, "excl": 3, "stack": 1, "stack_bias": 0}
    if case.batched:
        # a second leaf of the same shape and class, so a batch holds more than one leaf
        params["mm2"] = jax.random.normal(k[1], (a, b)).astype(dt)
        es_map["mm2"] = 1
    scan_map = {name: (0,) if name.startswith("stack") else () for name in params}
    epochs = jnp.array([0, 0, 1, 2, 3, 3, 5, 6][:N_MEMBERS], dtype=jnp.int32)
    data = {
        "es_key": jax.random.fold_in(jax.random.key(case.seed), 1),
        "epochs": epochs,
        "threads": jnp.arange(N_MEMBERS),
        "x": jax.random.normal(k[7], (N_MEMBERS, b)).astype(dt),
        "xT": jax.random.normal(k[8], (N_MEMBERS, a)).astype(dt),
        "xb": jax.random.normal(k[9], (N_MEMBERS, 3, b)).astype(dt),
        "raw": jax.random.normal(k[10], (N_MEMBERS,)),
        "raw2": jax.random.normal(k[11], (N_MEMBERS,)) * 3.0 + 1.0,
        "ids": jnp.array([0, 4, 2, 2]),  # rows of the (5, b) embedding table
    }
    return params, es_map, scan_map, data


def init_kwargs(case):
    solver, solver_kwargs = SOLVERS[case.solver]
    kwargs = dict(solver=solver, solver_kwargs=dict(solver_kwargs), group_size=case.group_size,
                  freeze_nonlora=case.freeze_nonlora, noise_reuse=case.noise_reuse, rank=case.rank)
    if case.batched:
        kwargs["use_batched_update"] = True
    return kwargs


def vmapped(fn, frozen, base_sigma, it, param, key):
    return jax.vmap(partial(fn, frozen), in_axes=(None, 0, None, None))(base_sigma, it, param, key)


def noiser_outputs(side, case, mode):
    """Everything one noiser computes for ``case``, as a dict of arrays/pytrees."""
    module_name, class_name = NOISERS[case.noiser]
    module = getattr(side.noiser, module_name)
    cls = getattr(module, class_name)
    params, es_map, scan_map, data = make_inputs(case)
    sigma = jnp.float32(0.15) if case.sigma_array else 0.15
    frozen, nparams = cls.init_noiser(params, sigma, 0.05, **init_kwargs(case))
    keys = side.common.simple_es_tree_key(params, data["es_key"], scan_map)
    bs_convert = case.noiser != "eggrollbs" or case.group_size > 0

    def compute(nparams, params, keys, data):
        out = {"keys": keys}
        it = (data["epochs"], data["threads"])
        mm, kmm = params["mm"], keys["mm"]
        sig = nparams.get("sigma")
        if case.noiser in LOW_RANK:
            out["lora"] = vmapped(module.get_lora_update_params, frozen, sig / jnp.sqrt(frozen["rank"]), it, mm, kmm)
        if case.noiser != "noop":
            out["nonlora"] = vmapped(module.get_nonlora_update_params, frozen, sig, it, params["bias"], keys["bias"])
        if case.noiser == "sparse":
            out["sparse"] = vmapped(module.get_sparse_update_params, frozen, sig, it, mm, kmm)
        def member(f):
            return jax.vmap(f)(it, *[data[n] for n in ("x", "xT", "xb")])

        out["do_mm"] = member(lambda i, x, xT, xb: cls.do_mm(frozen, nparams, mm, kmm, i, x))
        out["do_Tmm"] = member(lambda i, x, xT, xb: cls.do_Tmm(frozen, nparams, mm, kmm, i, xT))
        if case.noiser != "sparse":
            out["do_mm_batch"] = member(lambda i, x, xT, xb: cls.do_mm(frozen, nparams, mm, kmm, i, xb))
        if case.noiser == "noop":
            out["do_emb"] = cls.do_emb(frozen, nparams, params["emb"], keys["emb"], None, data["ids"])
        out["do_mm_plain"] = cls.do_mm(frozen, nparams, mm, kmm, None, data["x"])
        out["do_Tmm_plain"] = cls.do_Tmm(frozen, nparams, mm, kmm, None, data["xT"])
        out["noisy_standard"] = jax.vmap(
            lambda i: cls.get_noisy_standard(frozen, nparams, params["bias"], keys["bias"], i))(it)
        out["noisy_standard_plain"] = cls.get_noisy_standard(frozen, nparams, params["bias"], keys["bias"], None)
        if bs_convert:
            out["fitness"] = cls.convert_fitnesses(frozen, nparams, data["raw"])
            out["fitness_constant"] = cls.convert_fitnesses(frozen, nparams, jnp.full_like(data["raw"], 1.5))
            fit1 = out["fitness"]
            fit2 = cls.convert_fitnesses(frozen, nparams, data["raw2"])
        if case.noiser == "eggrollbs" and (not bs_convert or fit1.size != N_MEMBERS):
            fit1, fit2 = data["raw"], data["raw2"]
        it1 = (jnp.full(N_MEMBERS, 0, dtype=jnp.int32), data["threads"])
        it2 = (jnp.full(N_MEMBERS, 4, dtype=jnp.int32), data["threads"])
        np1, p1 = cls.do_updates(frozen, nparams, params, keys, fit1, it1, es_map)
        out["step1"] = {"params": p1, "noiser_params": dict(np1)}
        np2, p2 = cls.do_updates(frozen, np1, p1, keys, fit2, it2, es_map)
        out["step2"] = {"params": p2, "noiser_params": dict(np2)}
        return out

    fn = jax.jit(compute) if mode == "jit" else compute
    return fn(nparams, params, keys, data)


def noiser_cases(noiser):
    """Six cases per noiser: every dtype with two ``noise_reuse`` values, and the other
    dimensions walked round-robin alongside (each shape once, every rank, solver, group size,
    ``freeze_nonlora`` and sigma type at least once)."""
    dims = {
        "dtype": DTYPES,
        "noise_reuse": (0, 1, 3, 1, 3, 0),
        "shape": SHAPES,
        "seed": tuple(range(6)),
        "rank": (1, 2, 4, 8),
        "solver": tuple(SOLVERS),
        "group_size": (0, 4, 8) if noiser == "eggrollbs" else (0, 4),
        "freeze_nonlora": (False, True, False),
        "sigma_array": (False, False, True, False),
    }
    if noiser == "eggroll":
        dims["batched"] = (False, True)
    return [Case(noiser=noiser, **{dim: options[i % len(options)] for dim, options in dims.items()})
            for i in range(6)]


# Eager runs compile every primitive afresh for each new shape, so they take the last three
# cases (all dtypes, all noise_reuse values); jitted runs take all six.
MODE_CASES = {"jit": slice(0, 6), "eager": slice(3, 6)}


def compare_noiser_cases(sides, cases, ledger, mode):
    theirs_side, ours_side = sides
    for case in cases:
        with quiet():
            theirs = noiser_outputs(theirs_side, case, mode)
        ours = noiser_outputs(ours_side, case, mode)
        ledger.record(assert_tree_parity(ours, theirs, "bits", what=f"{case} [{mode}]"))
        ledger.cases += 1


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_eggroll_matches_upstream_smoke(sides, ledger, mode):
    compare_noiser_cases(sides, noiser_cases("eggroll")[3:4], ledger, mode)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["eager", "jit"])
@pytest.mark.parametrize("noiser", list(NOISERS))
def test_noiser_matches_upstream(sides, ledger, noiser, mode):
    compare_noiser_cases(sides, noiser_cases(noiser)[MODE_CASES[mode]], ledger, mode)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_batched_update_mixed_dtypes_matches_upstream(sides, ledger, mode):
    """Same-shaped leaves of different dtypes share a batch (stacked at the promoted dtype)."""
    theirs_side, ours_side = sides
    k = jax.random.split(jax.random.key(7), 4)
    params = {"a": jax.random.normal(k[0], (4, 5)), "b": jax.random.normal(k[1], (4, 5)).astype(jnp.bfloat16),
              "c": jax.random.normal(k[2], (4,)).astype(jnp.float16), "d": jax.random.normal(k[3], (4,))}
    es_map = {"a": 1, "b": 1, "c": 0, "d": 0}
    scan_map = {name: () for name in params}
    fit = jax.random.normal(jax.random.key(8), (6,))
    it = (jnp.full(6, 2, dtype=jnp.int32), jnp.arange(6))

    def run(side):
        cls = side.noiser.eggroll.EggRoll
        frozen, nparams = cls.init_noiser(params, 0.1, 0.01, rank=3, noise_reuse=1, use_batched_update=True,
                                          solver=optax.adam)
        keys = side.common.simple_es_tree_key(params, jax.random.key(9), scan_map)
        def step(n, p):
            return cls.do_updates(frozen, n, p, keys, fit, it, es_map)

        return (jax.jit(step) if mode == "jit" else step)(nparams, params)

    with quiet():
        theirs = run(theirs_side)
    ledger.record(assert_tree_parity(run(ours_side), theirs, "bits", what=f"batched mixed dtypes [{mode}]"))
    ledger.cases += 1


def test_unsupported_inputs_fail_on_both_sides(sides):
    """Embedding lookups and BS fitness shaping without groups are errors upstream and here."""
    theirs_side, ours_side = sides
    params = {"e": jnp.ones((4, 3))}
    for side in sides:
        for module_name, class_name in [v for n, v in NOISERS.items() if n != "noop"]:
            cls = getattr(getattr(side.noiser, module_name), class_name)
            frozen, nparams = cls.init_noiser(params, 0.1, 0.01, rank=1)
            with pytest.raises(NotImplementedError):
                cls.do_emb(frozen, nparams, params["e"], jax.random.key(0), (0, 0), jnp.array([1]))
        bs = side.noiser.eggroll_baseline_subtraction.EggRollBS
        frozen, nparams = bs.init_noiser(params, 0.1, 0.01)
        with pytest.raises((ZeroDivisionError, ValueError)):
            bs.convert_fitnesses(frozen, nparams, jnp.ones(8))


# ---------------------------------------------------------------- names and signatures


def _defined_here(module):
    for name, obj in vars(module).items():
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == module.__name__:
            yield name, obj


def test_same_names_and_signatures(hs, ledger):
    """Every function, class and method upstream defines exists here with the same signature."""
    checked = 0
    pairs = [(getattr(hs.noiser, m), getattr(jax_reference.noiser, m)) for m, _ in NOISERS.values()]
    pairs += [(getattr(hs.models, m), getattr(jax_reference.models, m)) for m in ("base_model", "common")]
    for theirs_module, ours_module in pairs:
        short = theirs_module.__name__.rsplit(".", 1)[1]
        for name, theirs in _defined_here(theirs_module):
            if (short, name) in UNUSED_UPSTREAM:
                continue
            ours = getattr(ours_module, name, None)
            assert ours is not None, f"jax_reference.{short}.{name} is missing"
            if inspect.isfunction(theirs):
                assert inspect.signature(ours) == inspect.signature(theirs), f"{short}.{name}"
            elif issubclass(theirs, tuple):
                assert ours._fields == theirs._fields, f"{short}.{name} fields"
            else:
                assert ours.__name__ == theirs.__name__
                for attr, member in vars(theirs).items():
                    if isinstance(member, classmethod):
                        mine = inspect.getattr_static(ours, attr, None)
                        assert isinstance(mine, classmethod), f"{short}.{name}.{attr} is not a classmethod here"
                        assert inspect.signature(mine.__func__) == inspect.signature(member.__func__), \
                            f"{short}.{name}.{attr}"
                        checked += 1
            checked += 1
        for name in ("PARAM", "MM_PARAM", "EMB_PARAM", "EXCLUDED"):
            if hasattr(theirs_module, name):
                assert getattr(ours_module, name) == getattr(theirs_module, name), name
    if hasattr(hs.models.common, "ACTIVATIONS"):
        assert list(jax_reference.models.common.ACTIVATIONS) == list(hs.models.common.ACTIVATIONS)
    assert checked > 40
    ledger.cases += 1


def test_all_noisers_registry(upstream_src, ledger):
    """``all_noisers`` maps the same names to the same module/class pairs (read from upstream's source)."""
    tree = ast.parse((upstream_src / "hyperscalees" / "noiser" / "__init__.py").read_text())
    registry = next(
        node.value for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "all_noisers" for t in node.targets)
    )
    theirs = {k.value: (v.value.id, v.attr) for k, v in zip(registry.keys, registry.values)}
    ours = {name: (cls.__module__.rsplit(".", 1)[1], cls.__name__)
            for name, cls in jax_reference.noiser.all_noisers.items()}
    assert ours == theirs
    ledger.cases += 1


# ---------------------------------------------------------------- models


def model_outputs(side, dtype, activation, mode):
    common = side.common
    key = jax.random.key(5)
    k = jax.random.split(key, 8)
    inits = {
        "param": common.Parameter.rand_init(k[0], (3, 2), 0.5, None, dtype),
        "param_raw": common.Parameter.rand_init(k[0], None, None, jnp.arange(4.0), dtype),
        "mm": common.MM.rand_init(k[1], 5, 3, dtype),
        "tmm": common.TMM.rand_init(k[2], 5, 3, dtype),
        "emb": common.Embedding.rand_init(k[3], 7, 4, dtype),
        "linear": common.Linear.rand_init(k[4], 5, 3, True, dtype),
        "linear_nobias": common.Linear.rand_init(k[4], 5, 3, False, dtype),
        "mlp": common.MLP.rand_init(k[5], 5, 2, [6, 4, 3], True, activation, dtype),
    }
    inits = {name: tuple(init) for name, init in inits.items()}
    frozen, params, scan_map, es_map = common.MLP.rand_init(k[6], 5, 2, [7, 6], True, activation, dtype)
    tree_key = common.simple_es_tree_key(params, k[7], scan_map)
    stacked = {"w": jnp.zeros((3, 2, 4)), "v": jnp.zeros((2, 3))}
    stacked_keys = common.simple_es_tree_key(stacked, k[7], {"w": (0, 2), "v": (1,)})
    x = jax.random.normal(jax.random.key(6), (8, 5)).astype(dtype)
    it = (jnp.full(8, 3, dtype=jnp.int32), jnp.arange(8))

    def compute(params, x):
        out = {"layer_norm": common.layer_norm(x), "act": common.ACTIVATIONS[activation](x)}
        for noiser in (side.noiser.base_noiser.Noiser, side.noiser.eggroll.EggRoll, side.noiser.open_es.OpenES):
            nf, nparams = noiser.init_noiser(params, 0.1, 0.01, rank=2, noise_reuse=1)
            def fwd(i, xi):
                return common.MLP.forward(noiser, nf, nparams, frozen, params, tree_key, i, xi)

            out[noiser.__name__] = {"members": jax.vmap(fwd)(it, x), "plain": jax.vmap(lambda xi: fwd(None, xi))(x)}
        return out

    fn = jax.jit(compute) if mode == "jit" else compute
    return {"inits": inits, "tree_key": tree_key, "stacked_keys": stacked_keys, "outputs": fn(params, x),
            "merged": tuple(common.merge_frozen(common.merge_inits(a=common.MM.rand_init(k[0], 2, 2, dtype)), z=1))}


@pytest.mark.parametrize("mode", ["eager", "jit"])
@pytest.mark.parametrize("dtype,activation", [
    ("float32", "relu"),
    pytest.param("bfloat16", "silu", marks=pytest.mark.slow),
    pytest.param("float16", "pqn", marks=pytest.mark.slow),
])
def test_models_match_upstream(sides, ledger, dtype, activation, mode):
    theirs_side, ours_side = sides
    with quiet():
        theirs = model_outputs(theirs_side, dtype, activation, mode)
    ours = model_outputs(ours_side, dtype, activation, mode)
    ledger.record(assert_tree_parity(ours, theirs, "bits", what=f"models {dtype} {activation} [{mode}]"))
    ledger.cases += 1


# ---------------------------------------------------------------- end to end


def _statistics(stdout):
    return [float(v) for v in re.findall(r"(?:score is|differences:) (-?[0-9.e+-]+|nan)", stdout)]


def test_upstream_end_to_end_script_matches_example(upstream_src, ledger, tmp_path):
    """Upstream's own ``tests/end_to_end_test.py``, run in a subprocess: its printed statistics
    for all 10 epochs and its final params equal those of ``jax_reference.examples.mlp_e2e``."""
    script = upstream_src.parent / "tests" / "end_to_end_test.py"
    if not script.is_file():
        pytest.skip(f"no upstream script at {script}: HYPERSCALEES_SRC must be <checkout>/src of a full checkout")
    subprocess.run([sys.executable, str(HERE / "_run_upstream_script.py"), str(upstream_src), str(script),
                    str(tmp_path)], check=True, timeout=900)
    expected_stats = _statistics((tmp_path / "stdout.txt").read_text())
    with np.load(tmp_path / "params.npz") as saved:
        expected_params = dict(saved)
    run = run_mlp_example(epochs=10)
    assert len(expected_stats) == 10 * 6
    ours_stats = []
    for epoch in range(10):
        scores = run.raw_scores[epoch]
        ours_stats += [float(jnp.mean(run.validation_scores[epoch])), float(jnp.mean(scores)),
                       float(jnp.min(scores)), float(jnp.max(scores))]
        previous = run.initial_params if epoch == 0 else run.params[epoch - 1]
        rms = jax.tree.map(lambda x, y: jnp.sqrt(jnp.mean((x - y) ** 2)), previous, run.params[epoch])
        layers = [rms[str(t)] for t in range(3)]
        ours_stats += [float(sum(layer["weight"] for layer in layers) / 3.0),
                       float(sum(layer["bias"] for layer in layers) / 3.0)]
    # Printed float32 values round-trip exactly, so compare them bit for bit at float32.
    ledger.record([assert_same_bits(np.float32(ours_stats), np.float32(expected_stats), "printed statistics")])
    ours_params = {jax.tree_util.keystr(path): leaf
                   for path, leaf in jax.tree_util.tree_flatten_with_path(run.params[-1])[0]}
    ledger.record(assert_tree_parity(ours_params, expected_params, "bits", what="end_to_end_test.py final params"))
    ledger.cases += 1


@pytest.mark.slow
@pytest.mark.parametrize("noiser", spec.PERTURBING_NOISERS)
def test_mlp_example_every_epoch_matches_upstream(sides, ledger, noiser):
    """The example loop driven by upstream's classes and by ours: identical params after every epoch."""
    theirs_side, ours_side = sides
    module_name, class_name = NOISERS[noiser]
    runs = []
    for side in sides:
        cls = getattr(getattr(side.noiser, module_name), class_name)
        with quiet():
            runs.append(run_mlp_example(cls, epochs=10, model=side.common.MLP,
                                        es_tree_key_fn=side.common.simple_es_tree_key,
                                        noiser_kwargs={"group_size": 64} if noiser == "eggrollbs" else None))
    theirs, ours = runs
    ledger.record(assert_tree_parity(ours.initial_params, theirs.initial_params, "bits",
                                     what=f"{noiser} initial params"))
    for epoch in range(10):
        ledger.record(assert_tree_parity(
            {"params": ours.params[epoch], "raw": ours.raw_scores[epoch], "fit": ours.fitnesses[epoch]},
            {"params": theirs.params[epoch], "raw": theirs.raw_scores[epoch], "fit": theirs.fitnesses[epoch]},
            "bits", what=f"{noiser} epoch {epoch}",
        ))
        ledger.cases += 1
