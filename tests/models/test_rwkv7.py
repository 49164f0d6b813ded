"""eggroll_torch.models.llm (RWKV-7) against jax_reference.models.llm on small random checkpoints.

Both sides load the same official-layout state dict; logits and the returned recurrent state agree
within :mod:`conformance.tolerances` (``fused``: a forward through several layers) without noise,
per EGGROLL population member, across two calls carrying the state, with a shorter ``length`` and
with ``new_starts`` resets, for every recurrence variant and in bfloat16.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conformance.tolerances import assert_parity, assert_tree_parity
from eggroll_torch.models.llm import rwkv7
from eggroll_torch.models.llm.checkpoints import rwkv7_state_dict

jax = pytest.importorskip("jax", reason="the JAX reference needs jax")
import jax.numpy as jnp  # noqa: E402

from _llm_parity import THREADS, check, load_pair  # noqa: E402
from _llm_parity import run_calls as run_pair  # noqa: E402
from jax_reference.models.llm import rwkv7 as jrwkv7  # noqa: E402

N_LAYER, N_HEAD, HEAD_SIZE, VOCAB = 2, 2, 4, 11
N_TOKENS = 6
VARIANTS = ["BaseRWKV", "ScanRWKV", "FastRWKV", "AssociativeScanRWKV"]


def build(variant: str, dtype: str):
    """Both sides' init and per-leaf keys from the same checkpoint and key words."""
    sd = rwkv7_state_dict(0, N_LAYER, N_HEAD, HEAD_SIZE, VOCAB)
    sd["head.weight"] = torch.from_numpy(np.random.default_rng(1).standard_normal((VOCAB, N_HEAD * HEAD_SIZE))
                                         .astype(np.float32) * 0.3)
    sd["ln_out.weight"], sd["ln_out.bias"] = torch.ones(N_HEAD * HEAD_SIZE) * 1.1, torch.full((N_HEAD * HEAD_SIZE,), .1)
    return load_pair(getattr(rwkv7, variant), getattr(jrwkv7, variant), sd, dtype)


def tokens(n_calls: int = 2, members: int = 0) -> np.ndarray:
    shape = (n_calls, members, N_TOKENS) if members else (n_calls, N_TOKENS)
    return np.random.default_rng(2).integers(0, VOCAB, shape)


def run_calls(variant, dtype, noiser, population, length=None, new_starts=None):
    """Two consecutive calls (the second carrying the first's state) on both sides: per call the
    torch (logits, state) and the reference's."""
    ids = tokens(members=len(THREADS) if population else 0)
    return run_pair(build(variant, dtype), noiser, ids, population, length=length, new_starts=new_starts)


def test_load_matches_reference():
    """Same params bit for bit (float32 and bfloat16), same maps and default state."""
    for dtype in ("float32", "bfloat16"):
        pair = build("BaseRWKV", dtype)
        t, j, tkeys, jkeys = pair.t, pair.j, pair.tkeys, pair.jkeys
        assert_tree_parity(t.params, j.params, "bits", what=f"RWKV-7 params {dtype}")
        assert t.scan_map == j.scan_map and t.es_map == j.es_map
        assert_tree_parity(tkeys, jax.tree.map(jax.random.key_data, jkeys), "exact", what="es tree keys")
        assert_parity(rwkv7.BaseRWKV.default_state(t.params, None),
                      np.asarray(jrwkv7.BaseRWKV.default_state(j.params, None)), "exact")


RESETS = np.array([False, False, True, False, True, False])


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_float32(variant):
    """No noise: two calls carrying the state, plain then with ``length`` 4 and ``new_starts`` resets."""
    check(run_calls(variant, "float32", "noop", False), f"{variant} noop")
    check(run_calls(variant, "float32", "noop", False, length=4, new_starts=RESETS), f"{variant} length/new_starts")


@pytest.mark.parametrize("variant", ["BaseRWKV", "AssociativeScanRWKV"])
def test_forward_eggroll_population(variant):
    """Four EGGROLL members at once (two epochs, antithetic pairs) against ``vmap`` of the
    reference: two calls carrying the state, with ``length`` 4 and ``new_starts`` resets. (ScanRWKV
    and FastRWKV run the same torch recurrence as BaseRWKV.)"""
    check(run_calls(variant, "float32", "eggroll", True, length=4, new_starts=RESETS), f"{variant} eggroll")


def test_associative_reset_at_length():
    """A reset at token ``length`` zeroes the associative variant's returned state and the readout
    before it, as the reference's does (the sequential variants keep them)."""
    ns = np.zeros(N_TOKENS, dtype=bool)
    ns[3] = True
    results = run_calls("AssociativeScanRWKV", "float32", "noop", False, length=3, new_starts=ns)
    check(results, "assoc reset")
    assert torch.all(results[0][0][1][:, 2:] == 0)


def test_forward_bfloat16():
    """bfloat16 params, EGGROLL members, ``length`` and resets (BaseRWKV)."""
    check(run_calls("BaseRWKV", "bfloat16", "eggroll", True, length=5, new_starts=RESETS), "BaseRWKV bfloat16")


def test_norm_functions():
    """The free functions ``group_norm`` (with spatial axes) and ``layer_norm`` match the reference."""
    rng = np.random.default_rng(4)
    x, weight, bias = (rng.standard_normal(shape).astype(np.float32) for shape in ((3, 8, 2), (8,), (8,)))
    got = rwkv7.group_norm(torch.from_numpy(x), 4, torch.from_numpy(weight), torch.from_numpy(bias), 64e-5)
    assert_parity(got, np.asarray(jrwkv7.group_norm(jnp.asarray(x), 4, jnp.asarray(weight), jnp.asarray(bias),
                                                      64e-5)), "fused", what="group_norm")
    w = {"weight": weight[:2], "bias": bias[:2]}
    got = rwkv7.layer_norm(torch.from_numpy(x), {k: torch.from_numpy(v) for k, v in w.items()})
    assert_parity(got, np.asarray(jrwkv7.layer_norm(jnp.asarray(x), w)), "fused", what="layer_norm")
