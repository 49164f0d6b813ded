"""Upstream's models: ``models.rl`` (actor-critic over gymnax spaces: params, forward and its
distribution), ``models.llm.rwkv7`` (RWKV-7: forward variants, noisy populations, carried state,
ES updates through its maps) and ``models.llm.qrwkv6`` (QRWKV6: both variants, plain, carried and
noised).

The RL policy's JAX side needs the ``rl`` extra (gymnax, distrax); without it ``jax_reference``
reports the check unsupported and the torch side is compared with the golden vectors, recorded
from upstream.
"""
from __future__ import annotations

import numpy as np

from .. import inputs
from ..adapters import base as caps
from ..spec import NoiserConfig, SolverSpec
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


# RWKV-7 cases: small random checkpoints in the official layout (a few thousand weights, so the
# vectors carry them), T tokens per call, heads of size 4 or 8.
RWKV7_VARIANTS = ("BaseRWKV", "ScanRWKV", "AssociativeScanRWKV", "FastRWKV")
RWKV7_VOCAB, RWKV7_TOKENS, RWKV7_MEMBERS = 11, 7, 4


def _rwkv7_checkpoint(seed: int, n_layer: int, n_head: int, head_size: int) -> dict:
    from eggroll_torch.models.llm.checkpoints import rwkv7_state_dict

    state_dict = rwkv7_state_dict(seed, n_layer, n_head, head_size, RWKV7_VOCAB, lora_dims=(4, 4, 2, 4))
    return {name: tensor.numpy() for name, tensor in state_dict.items()}


def _llm_calls(case_id: str, members: int, n_calls: int, carried: bool) -> list:
    """``n_calls`` calls of ``RWKV7_TOKENS`` tokens; with ``carried`` every call after the first
    stops its state one token early and restarts the stream twice (``new_starts``)."""
    g = inputs.rng(case_id + ":tokens")
    shape = (members, RWKV7_TOKENS) if members else (RWKV7_TOKENS,)
    calls = []
    for index in range(n_calls):
        resets = None
        if carried and index:
            resets = np.zeros(RWKV7_TOKENS, dtype=bool)
            resets[[2, RWKV7_TOKENS - 2]] = True
        calls.append({"tokens": g.integers(0, RWKV7_VOCAB, shape).astype(np.int32),
                      "length": RWKV7_TOKENS - 1 if carried and index else None, "new_starts": resets})
    return calls


def rwkv7_case(case_id: str, variant: str, dtype: str, config: NoiserConfig, *, shape=(2, 2, 4), perturbed=False,
               n_calls=1, carried=False, epochs=0) -> Case:
    members = RWKV7_MEMBERS if perturbed or epochs else 0
    population = inputs.population("permuted", members, 1, case_id) if members else None
    fitnesses = [inputs.normal(f"{case_id}:fitness{e}", (members,)) for e in range(epochs)]
    return Case(case_id, {"config": config, "model": {"variant": variant, "dtype": dtype},
                          "checkpoint": _rwkv7_checkpoint(len(case_id), *shape),
                          "tree_key": inputs.key(case_id + ":tree"), "population": population,
                          "calls": _llm_calls(case_id, members if perturbed else 0, n_calls, carried),
                          "fitnesses": fitnesses},
                requires(config, dtype, extra={caps.RWKV7}))


class _RWKV7Check(Check):
    component = COMPONENT
    requires = frozenset({caps.RWKV7})
    rng = True
    default_kind = "recurrence"

    def compute(self, adapter, case, noise=None):
        return adapter.rwkv7(case["config"], case["model"], case["checkpoint"], case["tree_key"],
                             case["population"], case["calls"], case["fitnesses"])


_NOOP = NoiserConfig(noiser="noop")
_EGGROLL = NoiserConfig(rank=2, sigma=0.05, noise_reuse=1)


@register
class RWKV7Forward(_RWKV7Check):
    id = "models.rwkv7_forward"
    impact = "high"
    summary = ("RWKV-7 loaded from an official-layout checkpoint, unperturbed: logits and recurrent state of "
               "each forward variant, float32 and bfloat16, 2-4 layers, head sizes 4 and 8")

    def cases(self, profile):
        cases = [rwkv7_case(f"{v}-float32", v, "float32", _NOOP) for v in RWKV7_VARIANTS]
        return cases + [
            rwkv7_case("ScanRWKV-3layers-head8", "ScanRWKV", "float32", _NOOP, shape=(3, 1, 8)),
            rwkv7_case("BaseRWKV-4layers", "BaseRWKV", "float32", _NOOP, shape=(4, 2, 4)),
            rwkv7_case("BaseRWKV-bfloat16", "BaseRWKV", "bfloat16", _NOOP),
            rwkv7_case("AssociativeScanRWKV-bfloat16", "AssociativeScanRWKV", "bfloat16", _NOOP),
        ]


@register
class RWKV7NoisyForward(_RWKV7Check):
    id = "models.rwkv7_noisy_forward"
    impact = "high"
    summary = ("RWKV-7 population under EGGROLL: every weight use routed through the noiser (low-rank noise "
               "on the projections and low-rank pairs, full noise on mixes and norms), members vmapped")

    def cases(self, profile):
        return [
            rwkv7_case("BaseRWKV-eggroll", "BaseRWKV", "float32", _EGGROLL, perturbed=True),
            rwkv7_case("AssociativeScanRWKV-eggroll", "AssociativeScanRWKV", "float32", _EGGROLL, perturbed=True),
            rwkv7_case("FastRWKV-eggroll-head8", "FastRWKV", "float32", _EGGROLL, shape=(2, 1, 8), perturbed=True),
            rwkv7_case("ScanRWKV-open_es", "ScanRWKV", "float32", NoiserConfig(noiser="open_es", sigma=0.05),
                       perturbed=True),
            rwkv7_case("BaseRWKV-eggroll-bfloat16", "BaseRWKV", "bfloat16", _EGGROLL, perturbed=True),
        ]


@register
class RWKV7State(_RWKV7Check):
    id = "models.rwkv7_state"
    impact = "high"
    summary = ("RWKV-7 over two calls: the second carries the first's state, stops it one token early "
               "(length) and restarts the stream twice (new_starts), per variant's reset semantics")

    def cases(self, profile):
        cases = [rwkv7_case(f"{v}-carried", v, "float32", _NOOP, n_calls=2, carried=True) for v in RWKV7_VARIANTS]
        return cases + [rwkv7_case("ScanRWKV-carried-eggroll", "ScanRWKV", "float32", _EGGROLL, perturbed=True,
                                   n_calls=2, carried=True)]


@register
class RWKV7EsStep(_RWKV7Check):
    id = "models.rwkv7_es_step"
    impact = "high"
    summary = ("RWKV-7 ES updates through its es_map and scan_map (layer-stacked leaves, one key per layer): "
               "params after one and two epochs of convert_fitnesses + do_updates")
    default_kind = "reduction"

    def cases(self, profile):
        adam = NoiserConfig(rank=2, sigma=0.05, lr=0.01, noise_reuse=1, solver=SolverSpec("adam"))
        return [
            rwkv7_case("eggroll-sgd", "ScanRWKV", "float32", NoiserConfig(rank=2, sigma=0.05, lr=0.1), n_calls=0,
                       epochs=2),
            rwkv7_case("eggroll-adam-reuse1", "ScanRWKV", "float32", adam, n_calls=0, epochs=2),
            rwkv7_case("eggroll-bfloat16", "ScanRWKV", "bfloat16", NoiserConfig(rank=2, sigma=0.05, lr=0.1),
                       n_calls=0, epochs=1),
            rwkv7_case("open_es-sgd", "ScanRWKV", "float32", NoiserConfig(noiser="open_es", sigma=0.05, lr=0.1),
                       shape=(3, 1, 4), n_calls=0, epochs=1),
        ]


# QRWKV6 cases: small random checkpoints in the Hugging Face layout, the RWKV-7 cases' token streams
# and population size; shapes are (layers, heads, key/value heads, head size), with grouped
# key/value heads in most and channels at the log decay's floor in every one.
QRWKV6_VARIANTS = ("BaseRWKV", "FastRWKV")


def _qrwkv6_checkpoint(seed: int, n_layer: int, n_head: int, n_kv_head: int, head_size: int) -> dict:
    from eggroll_torch.models.llm.checkpoints import qrwkv6_state_dict

    state_dict = qrwkv6_state_dict(seed, n_layer, n_head, head_size, RWKV7_VOCAB, n_kv_head=n_kv_head)
    return {name: tensor.numpy() for name, tensor in state_dict.items()}


def qrwkv6_case(case_id: str, variant: str, dtype: str, config: NoiserConfig, *, shape=(2, 4, 2, 4),
                perturbed=False, n_calls=1, carried=False) -> Case:
    members = RWKV7_MEMBERS if perturbed else 0
    population = inputs.population("permuted", members, 1, case_id) if members else None
    return Case(case_id, {"config": config, "model": {"variant": variant, "dtype": dtype, "head_size": shape[-1]},
                          "checkpoint": _qrwkv6_checkpoint(len(case_id), *shape),
                          "tree_key": inputs.key(case_id + ":tree"), "population": population,
                          "calls": _llm_calls(case_id, members, n_calls, carried), "fitnesses": []},
                requires(config, dtype, extra={caps.QRWKV6}))


@register
class QRWKV6Forward(Check):
    id = "models.qrwkv6_forward"
    component = COMPONENT
    impact = "high"
    summary = ("QRWKV6 loaded from a Hugging Face-layout checkpoint: logits and recurrent state of both variants, "
               "unperturbed, over two calls carrying the state (length, new_starts), and for EGGROLL populations "
               "(every weight use noised, members vmapped); float32 and bfloat16, grouped key/value heads")
    requires = frozenset({caps.QRWKV6})
    rng = True
    # As the RWKV-7 checks: a carried recurrent state. In bfloat16 this row allows what 'fused' does.
    default_kind = "recurrence"

    def cases(self, profile):
        cases = [qrwkv6_case(f"{v}-float32", v, "float32", _NOOP) for v in QRWKV6_VARIANTS]
        return cases + [
            qrwkv6_case("BaseRWKV-3layers-head8", "BaseRWKV", "float32", _NOOP, shape=(3, 2, 2, 8)),
            qrwkv6_case("BaseRWKV-carried", "BaseRWKV", "float32", _NOOP, n_calls=2, carried=True),
            qrwkv6_case("BaseRWKV-eggroll", "BaseRWKV", "float32", _EGGROLL, perturbed=True),
            qrwkv6_case("FastRWKV-eggroll-head8", "FastRWKV", "float32", _EGGROLL, shape=(2, 2, 1, 8),
                        perturbed=True),
            qrwkv6_case("BaseRWKV-carried-eggroll", "BaseRWKV", "float32", _EGGROLL, perturbed=True, n_calls=2,
                        carried=True),
            qrwkv6_case("BaseRWKV-eggroll-bfloat16", "BaseRWKV", "bfloat16", _EGGROLL, perturbed=True),
        ]

    def compute(self, adapter, case, noise=None):
        return adapter.qrwkv6(case["config"], case["model"], case["checkpoint"], case["tree_key"],
                              case["population"], case["calls"], case["fitnesses"])
