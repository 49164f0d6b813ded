"""eggroll_torch.models.rl against jax_reference.models.rl (which upstream's tests pin to upstream).

Params from the same keys are identical; forwards (unperturbed and per population member, base
noiser and EggRoll) agree within the tolerances of :mod:`conformance.tolerances`; ``sample``
from JAX-compatible keys gives distrax's draws bit for bit given the same distribution
parameters. The JAX side needs the ``rl`` extra (gymnax, distrax).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jax_reference.noiser as jnoiser
from conformance.tolerances import assert_parity, assert_same_bits, assert_tree_parity
from eggroll_torch import noiser as tnoiser
from eggroll_torch import random as es_random
from eggroll_torch.models import common, rl
from jax_reference.models import common as jcommon

pytest.importorskip("gymnax", reason="the rl extra (gymnax) is not installed: pip install -e '.[rl]'")
pytest.importorskip("distrax", reason="the rl extra (distrax) is not installed: pip install -e '.[rl]'")

import distrax  # noqa: E402
from gymnax.environments import spaces  # noqa: E402

import jax_reference.models.rl as jrl  # noqa: E402

N_MEMBERS = 6


def gymnax_space(name):
    return {
        "disc5": spaces.Discrete(5),
        "disc3": spaces.Discrete(3),
        "box3": spaces.Box(-1.0, 1.0, (3,)),
        "box2x3": spaces.Box(jnp.zeros((2, 3)), jnp.ones((2, 3)), (2, 3)),
        "box2": spaces.Box(-2.0, 2.0, (2,)),
    }[name]


def torch_space(name):
    """The same spaces as :func:`gymnax_space`, built from this package's look-alikes."""
    return {
        "disc5": rl.Discrete(5),
        "disc3": rl.Discrete(3),
        "box3": rl.Box(-1.0, 1.0, (3,)),
        "box2x3": rl.Box(torch.zeros(2, 3), torch.ones(2, 3), (2, 3)),
        "box2": rl.Box(-2.0, 2.0, (2,)),
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


CASES = [
    Case("box3", "disc5", True, 2, 8),
    Case("box3", "box2", True, 3, 16, "silu"),
    Case("box2x3", "box2", False, 1, 4, "pqn"),
    Case("box2x3", "disc3", False, 2, 6),
    Case("disc5", "disc3", True, 1, 8, "silu"),
    Case("disc5", "box2", False, 3, 5, use_bias=False),
    Case("box3", "box2", True, 2, 8, dtype="bfloat16"),
]
IDS = [f"{c.obs}-{c.act}-{'critic' if c.critic else 'actor'}-L{c.n_layers}-d{c.n_embd}-{c.dtype}" for c in CASES]


def jax_key(words: torch.Tensor):
    return jax.random.wrap_key_data(jnp.asarray(words.numpy()))


def to_torch(value) -> torch.Tensor:
    array = np.asarray(value)
    if array.dtype.name == "bfloat16":
        return torch.from_numpy(array.astype(np.float32)).to(torch.bfloat16)
    return torch.from_numpy(array.copy())


def is_discrete(name: str) -> bool:
    return name.startswith("disc")


def build(case: Case, seed: int = 0):
    """Both sides' init and per-leaf keys from the same key words."""
    k = es_random.key(seed)
    t = rl.ActorCriticMLP.rand_init(k, case.n_embd, torch_space(case.obs), torch_space(case.act), case.n_layers,
                                    case.use_bias, case.activation, case.critic, case.dtype)
    j = jrl.ActorCriticMLP.rand_init(jax_key(k), case.n_embd, gymnax_space(case.obs), gymnax_space(case.act),
                                     case.n_layers, case.use_bias, case.activation, case.critic, case.dtype)
    tkeys = common.simple_es_tree_key(t.params, es_random.key(seed + 1), t.scan_map)
    jkeys = jcommon.simple_es_tree_key(j.params, jax_key(es_random.key(seed + 1)), j.scan_map)
    return t, j, tkeys, jkeys


def inputs(case: Case):
    """Observations and actions for ``N_MEMBERS`` members (a flattened Box observation)."""
    rng = np.random.default_rng(3)
    if is_discrete(case.obs):
        x = rng.integers(0, gymnax_space(case.obs).n, N_MEMBERS)
        tx, jx = torch.from_numpy(x), jnp.asarray(x, dtype=jnp.int32)
    else:
        size = int(np.prod(gymnax_space(case.obs).shape))
        x = rng.standard_normal((N_MEMBERS, size)).astype(np.float32)
        jx = jnp.asarray(x).astype(case.dtype)
        tx = to_torch(jx)
    if is_discrete(case.act):
        a = rng.integers(0, gymnax_space(case.act).n, N_MEMBERS)
        return tx, jx, torch.from_numpy(a), jnp.asarray(a, dtype=jnp.int32)
    a = (rng.standard_normal((N_MEMBERS, gymnax_space(case.act).shape[0])) * 2).astype(np.float32)
    return tx, jx, torch.from_numpy(a), jnp.asarray(a)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_rl_init_exact(case):
    """Same key -> the same params bit for bit, and the same es_map, scan_map and frozen params."""
    t, j, tkeys, jkeys = build(case)
    assert_tree_parity(t.params, j.params, "bits", what="ActorCriticMLP params")
    assert t.es_map == j.es_map and t.scan_map == j.scan_map and t.frozen_params == j.frozen_params
    assert_tree_parity(tkeys, jax.tree.map(jax.random.key_data, jkeys), "exact", what="es tree keys")


def test_rl_space_definitions():
    for name in ("disc5", "box3", "box2x3"):
        t, j = rl.get_space_defn(torch_space(name)), jrl.get_space_defn(gymnax_space(name))
        t_from_gymnax = rl.get_space_defn(gymnax_space(name))
        assert t["space"] == j["space"] == t_from_gymnax["space"]
        if "low" in j:
            assert_tree_parity({k: t[k] for k in ("low", "high")}, {k: j[k] for k in ("low", "high")}, "exact")
    # the Box dtype is tested by identity upstream: numpy's float32 and an integer Box are "boxdiscrete"
    assert rl.get_space_defn(spaces.Box(-1.0, 1.0, (2,), dtype=np.float32))["space"] == "boxdiscrete"
    assert rl.get_space_defn(rl.Box(0, 4, (3,), torch.int32))["space"] == "boxdiscrete"
    with pytest.raises(NotImplementedError):
        rl.InputProcessor.rand_init(es_random.key(0), 4, rl.Box(0, 4, (3,), torch.int32), "float32")
    with pytest.raises(NotImplementedError):
        rl.get_space_defn(object())


def forward_both(case: Case, noiser_name: str, population: bool):
    """(torch outputs, JAX outputs) of one forward: distribution and critic (or None)."""
    t, j, tkeys, jkeys = build(case)
    tcls, jcls = tnoiser.all_noisers[noiser_name], jnoiser.all_noisers[noiser_name]
    tf, tn = tcls.init_noiser(t.params, 0.1, 0.01, rank=2, noise_reuse=1)
    jf, jn = jcls.init_noiser(j.params, 0.1, 0.01, rank=2, noise_reuse=1)
    tx, jx, ta, ja = inputs(case)
    epochs = np.array([0, 0, 1, 1, 2, 2], dtype=np.int32)
    threads = np.arange(N_MEMBERS, dtype=np.int32)
    t_it = (torch.from_numpy(epochs), torch.from_numpy(threads)) if population else None
    j_it = (jnp.asarray(epochs), jnp.asarray(threads))
    got = rl.ActorCriticMLP.forward(tcls, tf, tn, t.frozen_params, t.params, tkeys, t_it, tx)

    def member(it, xi, ai):
        out = jrl.ActorCriticMLP.forward(jcls, jf, jn, j.frozen_params, j.params, jkeys, it, xi)
        pi, critic = out if case.critic else (out, None)
        fields = {"log_prob": pi.log_prob(ai)}
        if isinstance(pi, distrax.Categorical):
            fields["logits"] = pi.logits
        else:
            fields |= {"mean": pi.mean(), "stddev": pi.stddev()}
        return fields | ({"critic": critic} if case.critic else {})

    if population:
        expected = jax.vmap(member)(j_it, jx, ja)
    else:
        expected = jax.vmap(lambda xi, ai: member(None, xi, ai))(jx, ja)
    pi, critic = got if case.critic else (got, None)
    mine = {"log_prob": pi.log_prob(ta)}
    if isinstance(pi, torch.distributions.Categorical):
        mine["logits"] = pi.logits
    else:
        mine |= {"mean": pi.mean, "stddev": pi.stddev.expand_as(pi.mean)}
    if case.critic:
        mine["critic"] = critic
    return mine, expected


NOISER_CASES = [(c, "noop") for c in CASES] + [(c, "eggroll") for c in CASES if not is_discrete(c.obs)]


@pytest.mark.parametrize("population", [False, True], ids=["plain", "population"])
@pytest.mark.parametrize("case,noiser", NOISER_CASES, ids=[f"{i}-{n}" for i, n in
                                                           zip([IDS[CASES.index(c)] for c, _ in NOISER_CASES],
                                                               [n for _, n in NOISER_CASES])])
def test_rl_forward(case, noiser, population):
    """Logits / mean / stddev, log-probabilities of given actions and the critic, per member."""
    mine, expected = forward_both(case, noiser, population)
    assert set(mine) == set(expected)
    for name, value in mine.items():
        # log-softmax, log-probabilities and the heads sit on top of the forward's reductions
        assert_parity(value, np.asarray(expected[name]), "fused", what=f"{name} {noiser}")


def test_rl_discrete_observation_needs_the_base_noiser():
    """EggRoll has no embedding lookup (upstream raises too)."""
    t, _, tkeys, _ = build(CASES[4])
    tf, tn = tnoiser.all_noisers["eggroll"].init_noiser(t.params, 0.1, 0.01)
    with pytest.raises(NotImplementedError):
        rl.ActorCriticMLP.forward(tnoiser.all_noisers["eggroll"], tf, tn, t.frozen_params, t.params, tkeys, None,
                                  torch.tensor([1]))


@pytest.mark.parametrize("sample_shape", [(), (4,), (2, 3)], ids=str)
@pytest.mark.parametrize("batch", [(), (3,), (2, 3)], ids=str)
def test_rl_sample_categorical_exact(batch, sample_shape):
    """``sample`` equals distrax's ``Categorical(logits).sample(seed=key)`` on 64 keys."""
    logits = jax.random.normal(jax.random.key(1), (*batch, 5)) * 2.0
    pi = torch.distributions.Categorical(logits=to_torch(logits))
    keys = jax.random.split(jax.random.key(2), 64)
    expected = np.stack([np.asarray(distrax.Categorical(logits=logits).sample(seed=k, sample_shape=sample_shape))
                         for k in keys])
    got = torch.stack([rl.sample(pi, es_random.wrap_key_data(np.asarray(jax.random.key_data(k))), sample_shape)
                       for k in keys])
    assert_same_bits(got, expected, f"Categorical sample batch {batch} sample_shape {sample_shape}")


@pytest.mark.parametrize("sample_shape", [(), (4,), (2, 3)], ids=str)
@pytest.mark.parametrize("batch", [(), (3,)], ids=str)
def test_rl_sample_normal_exact(batch, sample_shape):
    """``sample`` equals distrax's ``MultivariateNormalDiag(mean, std).sample(seed=key)`` (eager)."""
    mean = jax.random.normal(jax.random.key(1), (*batch, 4))
    std = jnp.exp(jax.random.normal(jax.random.key(3), (4,)))
    pi = torch.distributions.Independent(torch.distributions.Normal(to_torch(mean), to_torch(std)), 1)
    keys = jax.random.split(jax.random.key(2), 16)
    dist = distrax.MultivariateNormalDiag(mean, std)
    expected = np.stack([np.asarray(dist.sample(seed=k, sample_shape=sample_shape)) for k in keys])
    got = torch.stack([rl.sample(pi, es_random.wrap_key_data(np.asarray(jax.random.key_data(k))), sample_shape)
                       for k in keys])
    assert_same_bits(got, expected, f"normal sample batch {batch} sample_shape {sample_shape}")


@pytest.mark.parametrize("case", [CASES[0], CASES[1]], ids=[IDS[0], IDS[1]])
def test_rl_sample_per_member_matches_vmap(case):
    """Population forward with one key per member == ``jax.vmap`` of distrax's sample per member,
    given the same distribution parameters (the JAX forward's, handed to torch)."""
    mine, expected = forward_both(case, "eggroll", population=True)
    keys = jax.random.split(jax.random.key(9), N_MEMBERS)
    seeds = es_random.wrap_key_data(np.asarray(jax.random.key_data(keys)))
    if is_discrete(case.act):
        logits = expected["logits"]
        want = jax.vmap(lambda lg, k: distrax.Categorical(logits=lg).sample(seed=k, sample_shape=(3,)))(logits, keys)
        pi = torch.distributions.Categorical(logits=to_torch(logits))
    else:
        mean, std = expected["mean"], expected["stddev"]
        want = jax.vmap(lambda m, s, k: distrax.MultivariateNormalDiag(m, s).sample(seed=k, sample_shape=(3,)))(
            mean, std, keys)
        pi = torch.distributions.Independent(torch.distributions.Normal(to_torch(mean), to_torch(std)), 1)
    assert_same_bits(rl.sample(pi, seeds, (3,)), np.asarray(want), "per-member samples")


def test_rl_sample_rejects_mismatched_seed_batch():
    pi = torch.distributions.Categorical(logits=torch.zeros(3, 4))
    with pytest.raises(ValueError, match="leading axes"):
        rl.sample(pi, es_random.split(es_random.key(0), 2))
    with pytest.raises(TypeError):
        rl.sample(torch.distributions.Normal(0.0, 1.0), es_random.key(0))

