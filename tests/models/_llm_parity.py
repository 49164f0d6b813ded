"""Helpers for holding an ``eggroll_torch.models.llm`` model to its ``jax_reference`` counterpart.

Both sides load the same state dict and get per-leaf keys from the same key words; a probe is a
run of consecutive calls that carry the recurrent state, without noise (one member) or for an
EGGROLL population at once (torch) against ``vmap`` over members (reference), compared call by
call under a tolerance kind (``fused`` unless the caller says otherwise). Importing this module
needs jax (callers skip without it).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import torch

import jax_reference.noiser as jnoiser
from conformance.tolerances import Comparison, assert_parity, compare
from eggroll_torch import noiser as tnoiser
from eggroll_torch import random as es_random
from eggroll_torch.models import common
from jax_reference.models import common as jcommon

# Four members of epochs 0, 0, 1, 1: two antithetic pairs.
EPOCHS = np.array([0, 0, 1, 1], dtype=np.int32)
THREADS = np.arange(4, dtype=np.int32)


def to_torch(value) -> torch.Tensor:
    """A JAX array as a torch tensor of the same dtype (bfloat16 through float32, exactly)."""
    array = np.asarray(value)
    if array.dtype.name == "bfloat16":
        return torch.from_numpy(array.astype(np.float32)).to(torch.bfloat16)
    return torch.from_numpy(array.copy())


@dataclass(frozen=True)
class Pair:
    """One model class and its loaded init on each side, with per-leaf keys from the same words."""

    tmodel: type
    jmodel: type
    t: object
    j: object
    tkeys: object
    jkeys: object


def load_pair(tmodel, jmodel, state_dict, dtype: str, config=None, key_seed: int = 5) -> Pair:
    """``load_from_torch`` of ``state_dict`` on both sides (torch gets a copy, as loading changes
    the dict in place), keys from ``simple_es_tree_key`` of the same key words."""
    t = tmodel.load_from_torch({k: v.clone() for k, v in state_dict.items()}, config, dtype)
    j = jmodel.load_from_torch(state_dict, config, getattr(jnp, dtype))
    words = es_random.key(key_seed)
    tkeys = common.simple_es_tree_key(t.params, words, t.scan_map)
    jkeys = jcommon.simple_es_tree_key(j.params, jax.random.wrap_key_data(jnp.asarray(words.numpy())), j.scan_map)
    return Pair(tmodel, jmodel, t, j, tkeys, jkeys)


def run_calls(pair: Pair, noiser: str, ids: np.ndarray, population: bool, config=None, length=None,
              new_starts=None, sigma: float = 0.1):
    """Consecutive calls on both sides, each carrying the previous call's state; ``ids`` is
    ``(calls, T)`` or ``(calls, members, T)`` for a population of :data:`THREADS`. ``new_starts``:
    ``(T,)`` shared, or ``(members, T)`` (torch takes it whole, the reference one row per member).
    Returns, per call, the torch ``(logits, state)`` and the reference's."""
    tcls, jcls = tnoiser.all_noisers[noiser], jnoiser.all_noisers[noiser]
    tf, tn = tcls.init_noiser(pair.t.params, sigma, 0.01, rank=2, noise_reuse=1)
    jf, jn = jcls.init_noiser(pair.j.params, sigma, 0.01, rank=2, noise_reuse=1)
    tstate = pair.tmodel.default_state(pair.t.params, config)
    jstate = pair.jmodel.default_state(pair.j.params, config)
    if population:
        tstate = tstate.expand(len(THREADS), *tstate.shape)
        jstate = jnp.broadcast_to(jstate, (len(THREADS), *jstate.shape))
    t_it = (torch.from_numpy(EPOCHS), torch.from_numpy(THREADS)) if population else None
    j_ns = None if new_starts is None else jnp.asarray(new_starts)
    t_ns = None if new_starts is None else torch.from_numpy(new_starts)

    # Eager, not jitted: XLA's fusions under jit round differently from the reference's own eager run.
    def member(it, toks, state, ns):
        return pair.jmodel.forward(jcls, jf, jn, pair.j.frozen_params, pair.j.params, pair.jkeys, it, toks, state,
                                   length, ns)

    results = []
    for call in range(ids.shape[0]):
        got = pair.tmodel.forward(tcls, tf, tn, pair.t.frozen_params, pair.t.params, pair.tkeys, t_it,
                                  torch.from_numpy(ids[call]), tstate, length, t_ns)
        if population:
            per_member = j_ns is not None and j_ns.ndim == 2
            expected = jax.vmap(member, in_axes=(0, 0, 0, 0 if per_member else None))(
                (jnp.asarray(EPOCHS), jnp.asarray(THREADS)), jnp.asarray(ids[call]), jstate, j_ns)
        else:
            expected = member(None, jnp.asarray(ids[call]), jstate, j_ns)
        results.append((got, expected))
        tstate, jstate = got[1], expected[1]
    return results


def check(results, what: str, kind: str = "fused") -> list[Comparison]:
    """Every call's logits and state within ``kind`` of the reference's; returns the comparisons."""
    comparisons = []
    for call, ((logits, state), (jlogits, jstate)) in enumerate(results):
        comparisons.append(assert_parity(logits, to_torch(jlogits), kind, what=f"{what} logits call {call}"))
        comparisons.append(assert_parity(state, to_torch(jstate), kind, what=f"{what} state call {call}"))
    return comparisons


def max_ulp(results, kind: str = "fused") -> float:
    """The largest ULP error of any call's logits or state, as ``kind`` counts it (no assertion)."""
    return max(compare(got, to_torch(expected), kind).max_ulp
               for pair in results for got, expected in zip(*pair))
