"""Upstream's ``models.rl`` actor-critic over gymnax spaces: params, forward and its distribution.

The JAX side needs the ``rl`` extra (gymnax, distrax); without it ``jax_reference`` reports the
check unsupported and the torch side is compared with the golden vectors, recorded from upstream.
"""
from __future__ import annotations

import numpy as np

from .. import inputs
from ..adapters import base as caps
from ..spec import NoiserConfig
from ..tolerances import numpy_dtype
from ._common import requires
from .base import Case, Check, register

COMPONENT = "Models"
N_MEMBERS = 6


def _policy(obs, act, n_embd, n_layers, have_critic, activation="relu", use_bias=True, dtype="float32") -> dict:
    return {"obs": obs, "act": act, "n_embd": n_embd, "n_layers": n_layers, "use_bias": use_bias,
            "activation": activation, "have_critic": have_critic, "dtype": dtype}


def _samples(name: str, space: tuple, dtype: str) -> np.ndarray:
    """``N_MEMBERS`` observations or actions of ``space``: int32 for discrete, normals of ``dtype``
    (a Box flattened) for a box."""
    kind, size = space
    if kind == "discrete":
        return inputs.rng(name).integers(0, size, N_MEMBERS).astype(np.int32)
    return inputs.normal(name, (N_MEMBERS, int(np.prod(size))), dtype=numpy_dtype(dtype))


def rl_case(case_id: str, policy: dict, config: NoiserConfig, perturbed: bool) -> Case:
    population = inputs.population("permuted", N_MEMBERS, 2, case_id) if perturbed else None
    sample_keys = np.stack([inputs.key(f"{case_id}:sample{i}") for i in range(N_MEMBERS)])
    return Case(case_id, {"config": config, "policy": policy, "key": inputs.key(case_id),
                          "tree_key": inputs.key(case_id + ":tree"), "population": population,
                          "obs": _samples(case_id + ":obs", policy["obs"], policy["dtype"]),
                          "actions": _samples(case_id + ":act", policy["act"], "float32"),
                          "sample_keys": sample_keys},
                requires(config, policy["dtype"], extra={caps.RL_POLICY}))


@register
class RLPolicy(Check):
    id = "models.rl_policy"
    component = COMPONENT
    impact = "medium"
    summary = ("ActorCriticMLP over Discrete/Box spaces: init from split(key, 4), Embedding or MM input, "
               "Categorical or diagonal normal with a learned log-std, optional critic; noised per member")
    requires = frozenset({caps.RL_POLICY})
    rng = True
    default_kind = "fused"
    output_kinds = {"params/": "bits"}

    def cases(self, profile):
        eggroll = NoiserConfig(rank=2, sigma=0.1, noise_reuse=1)
        noop = NoiserConfig(noiser="noop")
        box3, box2x3, box2 = ("box", (3,)), ("box", (2, 3)), ("box", (2,))
        disc5, disc3 = ("discrete", 5), ("discrete", 3)
        return [
            rl_case("box-disc-critic", _policy(box3, disc5, 8, 2, True), eggroll, True),
            rl_case("box-box-critic", _policy(box3, box2, 16, 3, True, "silu"), eggroll, True),
            rl_case("box2x3-box-actor", _policy(box2x3, box2, 4, 1, False, "pqn"), eggroll, True),
            rl_case("box-box-unperturbed", _policy(box3, box2, 8, 2, True), eggroll, False),
            # other noisers cannot look up embeddings: a discrete observation runs unperturbed
            rl_case("disc-disc-critic", _policy(disc5, disc3, 8, 1, True, "silu"), noop, False),
            rl_case("disc-box-nobias", _policy(disc5, box2, 5, 3, False, use_bias=False), noop, False),
            rl_case("box-box-bfloat16", _policy(box3, box2, 8, 2, True, dtype="bfloat16"), eggroll, True),
        ]

    def compute(self, adapter, case, noise=None):
        return adapter.rl_policy(case["config"], case["policy"], case["key"], case["tree_key"], case["population"],
                                 case["obs"], case["actions"], case["sample_keys"])
