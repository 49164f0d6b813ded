"""jax_reference.models.rl against upstream's models/rl.py: identical arrays, bit for bit.

Both sides run the same probe: ``ActorCriticMLP.rand_init`` over gymnax spaces (params, es_map,
scan_map, frozen params), then forwards of the unperturbed policy and of eight population members
(base noiser, and EggRoll for continuous observations: upstream's EggRoll cannot look up an
embedding), reading out everything a distrax distribution gives (logits/probs or mean/stddev,
``log_prob`` of given actions, ``sample(seed=key)``) and the critic. Eager runs are compared with
eager runs, jitted with jitted. Needs the ``rl`` extra (gymnax, distrax) besides
``$HYPERSCALEES_SRC``.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from _same_api import assert_same_api
from conformance.tolerances import assert_tree_parity

pytest.importorskip("gymnax", reason="the rl extra (gymnax) is not installed: pip install -e '.[rl]'")
pytest.importorskip("distrax", reason="the rl extra (distrax) is not installed: pip install -e '.[rl]'")

import distrax  # noqa: E402
from gymnax.environments import spaces  # noqa: E402

import jax_reference.models.rl as ours_rl  # noqa: E402
import jax_reference.noiser as ours_noiser  # noqa: E402

pytestmark = [pytest.mark.upstream]
N_MEMBERS = 8


@contextlib.contextmanager
def quiet():
    """Swallow anything upstream prints while tracing."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def space(name):
    """The gymnax spaces the cases use, rebuilt per call (bounds are JAX arrays or scalars)."""
    return {
        "disc5": spaces.Discrete(5),
        "disc3": spaces.Discrete(3),
        "box3": spaces.Box(-1.0, 1.0, (3,)),
        "box2x3": spaces.Box(jnp.zeros((2, 3)), jnp.ones((2, 3)), (2, 3)),
        "box2": spaces.Box(-2.0, 2.0, (2,)),
        "box1": spaces.Box(jnp.array([-1.0]), jnp.array([1.0]), (1,)),
    }[name]


@dataclass(frozen=True)
class Case:
    obs: str
    act: str
    critic: bool
    n_layers: int
    n_embd: int
    activation: str = "relu"
    use_bias: bool = True
    dtype: str = "float32"
    seed: int = 0


CASES = [
    Case("box3", "disc5", True, 2, 8),
    Case("box3", "box2", True, 3, 16, "silu"),
    Case("box2x3", "box2", False, 1, 4, "pqn", seed=1),
    Case("box2x3", "disc3", False, 2, 6, seed=2),
    Case("disc5", "disc3", True, 1, 8, "silu", seed=3),
    Case("disc5", "box1", False, 3, 5, use_bias=False, seed=4),
    Case("box1", "box2", True, 0, 4, seed=5),
    Case("box3", "disc5", True, 2, 8, "relu", dtype="bfloat16", seed=6),
    Case("box3", "box2", False, 2, 8, "silu", dtype="bfloat16", seed=7),
]


def is_discrete(name):
    return name.startswith("disc")


def observations(case, key):
    """One observation per member: integers for Discrete, flattened floats for a Box."""
    if is_discrete(case.obs):
        return jax.random.randint(key, (N_MEMBERS,), 0, space(case.obs).n)
    size = int(np.prod(space(case.obs).shape))
    return jax.random.normal(key, (N_MEMBERS, size)).astype(case.dtype)


def actions(case, key):
    if is_discrete(case.act):
        # one out-of-range action: distrax gives it log-probability -inf
        return jax.random.randint(key, (N_MEMBERS,), 0, space(case.act).n + 1)
    return jax.random.normal(key, (N_MEMBERS, space(case.act).shape[0])) * 2.0


def read_out(pi, action, key):
    """Every array the action distribution gives for one observation."""
    out = {"log_prob": pi.log_prob(action), "sample": pi.sample(seed=key),
           "sample_shaped": pi.sample(seed=key, sample_shape=(3,))}
    if isinstance(pi, distrax.Categorical):
        out |= {"logits": pi.logits, "probs": pi.probs}
    else:
        out |= {"mean": pi.mean(), "stddev": pi.stddev(), "entropy": pi.entropy()}
    return out


def rl_outputs(side, case, mode):
    """Init trees and every forward output of ``case`` on one side (``side`` = upstream's or our
    ``rl`` module and its noiser package)."""
    rl, noisers = side
    k = jax.random.split(jax.random.key(100 + case.seed), 5)
    init = rl.ActorCriticMLP.rand_init(k[0], case.n_embd, space(case.obs), space(case.act), case.n_layers,
                                       case.use_bias, case.activation, case.critic, case.dtype)
    frozen, params, _, _ = init
    es_keys = key_tree(params, k[1])
    x, a = observations(case, k[2]), actions(case, k[3])
    sample_keys = jax.random.split(k[4], N_MEMBERS)
    it = (jnp.array([0, 0, 1, 1, 2, 2, 3, 3], dtype=jnp.int32), jnp.arange(N_MEMBERS))
    chosen = [noisers.base_noiser.Noiser]
    if not is_discrete(case.obs):
        chosen.append(noisers.eggroll.EggRoll)

    def compute(params, x, a):
        out = {}
        for noiser in chosen:
            nf, nparams = noiser.init_noiser(params, 0.1, 0.01, rank=2, noise_reuse=1)

            def member(i, xi, ai, ki):
                result = rl.ActorCriticMLP.forward(noiser, nf, nparams, frozen, params, es_keys, i, xi)
                pi, critic = result if case.critic else (result, None)
                return read_out(pi, ai, ki) | ({"critic": critic} if case.critic else {})

            out[noiser.__name__] = {
                "members": jax.vmap(member)(it, x, a, sample_keys),
                "plain": jax.vmap(lambda xi, ai, ki: member(None, xi, ai, ki))(x, a, sample_keys),
                "one": member(None, x[0], a[0], sample_keys[0]),
            }
        return out

    fn = jax.jit(compute) if mode == "jit" else compute
    return {"init": tuple(init), "es_keys": es_keys, "outputs": fn(params, x, a)}


def key_tree(params, key):
    """One key per leaf (no stacked leaves here), drawn by the probe for both sides alike."""
    leaves, treedef = jax.tree.flatten(params)
    return jax.tree.unflatten(treedef, list(jax.random.split(key, len(leaves))))


@pytest.fixture(scope="module")
def rl_sides(hs):
    if not hasattr(hs.models, "rl"):
        pytest.skip("upstream's models/rl.py was not loaded (gymnax or distrax missing)")
    return (hs.models.rl, hs.noiser), (ours_rl, ours_noiser)


@pytest.mark.parametrize("mode", ["eager", "jit"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.obs}-{c.act}-{'critic' if c.critic else 'actor'}-"
                         f"L{c.n_layers}-d{c.n_embd}-{c.activation}-{c.dtype}")
def test_rl_matches_upstream(rl_sides, ledger, case, mode):
    theirs_side, ours_side = rl_sides
    with quiet():
        theirs = rl_outputs(theirs_side, case, mode)
    ours = rl_outputs(ours_side, case, mode)
    if "EggRoll" in ours["outputs"]:
        # the probe reaches the noise: members differ from the unperturbed policy
        noisy = ours["outputs"]["EggRoll"]
        field = "logits" if is_discrete(case.act) else "mean"
        assert not np.array_equal(noisy["members"][field], noisy["plain"][field])
    ledger.record(assert_tree_parity(ours, theirs, "bits", what=f"rl {case} [{mode}]"))
    ledger.cases += 1


def test_rl_space_definitions_match_upstream(rl_sides, ledger):
    """``get_space_defn`` of every space kind, and the Box dtype identity test: a Box whose dtype is
    ``np.float32`` (not ``jnp.float32``) or an integer Box is ``boxdiscrete``."""
    theirs_side, ours_side = rl_sides
    boxes = [space(name) for name in ("disc5", "box3", "box2x3", "box1")] + [
        spaces.Box(-1.0, 1.0, (2,), dtype=np.float32),
        spaces.Box(0, 4, (3,), dtype=jnp.int32),
        spaces.Box(np.zeros(2, np.float32), np.ones(2, np.float32), (2,)),
    ]
    theirs = [theirs_side[0].get_space_defn(b) for b in boxes]
    ours = [ours_side[0].get_space_defn(b) for b in boxes]
    assert [d["space"] for d in ours] == ["discrete", "continuous", "continuous", "continuous", "boxdiscrete",
                                          "boxdiscrete", "continuous"]
    ledger.record(assert_tree_parity(ours, theirs, "bits", what="get_space_defn"))
    ledger.cases += 1


def test_rl_unsupported_inputs_fail_on_both_sides(rl_sides):
    """A boxdiscrete space in either processor, a non-gymnax space, and EggRoll's embedding lookup
    (discrete observations) raise NotImplementedError upstream and here."""
    key = jax.random.key(0)
    int_box = spaces.Box(0, 4, (3,), dtype=jnp.int32)
    for rl, noisers in rl_sides:
        with pytest.raises(NotImplementedError):
            rl.InputProcessor.rand_init(key, 4, int_box, "float32")
        with pytest.raises(NotImplementedError):
            rl.OutputProcessor.rand_init(key, 4, int_box, True, "float32")
        with pytest.raises(NotImplementedError):
            rl.get_space_defn(object())
        frozen, params, _, _ = rl.ActorCriticMLP.rand_init(key, 4, space("disc5"), space("disc3"), 2, True,
                                                                  "relu", False, "float32")
        keys = key_tree(params, key)
        nf, nparams = noisers.eggroll.EggRoll.init_noiser(params, 0.1, 0.01)
        with pytest.raises(NotImplementedError):
            rl.ActorCriticMLP.forward(noisers.eggroll.EggRoll, nf, nparams, frozen, params, keys, (0, 1),
                                      jnp.array(2))


def test_rl_same_names_and_signatures(rl_sides, ledger):
    """Every function and class upstream's rl.py defines exists here with the same signatures."""
    theirs, ours = rl_sides[0][0], rl_sides[1][0]
    checked = assert_same_api(theirs, ours)
    assert checked == 4
    ledger.cases += 1
