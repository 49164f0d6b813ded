"""eggroll_torch.models.llm.qrwkv6 against jax_reference.models.llm.qrwkv6 on small random checkpoints.

Both sides load the same Hugging Face-layout state dict (grouped key/value heads, decays reaching
the -5 floor of the log decay); logits and the returned recurrent state agree within
:mod:`conformance.tolerances` without noise, per EGGROLL population member (a population at once
against ``vmap`` of the reference), across two calls carrying the state, with a shorter
``length``, ``length = 0`` and per-call or per-member ``new_starts`` resets, for both variants and
in bfloat16.

bfloat16 is held to ``fused`` (measured at most 4.6 of its 8 ULP over eight checkpoints); float32
to ``recurrence``, the table's row for a carried recurrent state: over ten random checkpoints of
this shape the largest error is 83-146 ULP, 4-8 ULP of each array's largest value, on small logits
and state entries. The excess over ``fused`` is reduction order, not a difference in the
computation: with the noiser's matrix products evaluated by XLA instead of torch the same probe
drops to about 50 ULP, jax_reference jitted against itself eagerly differs by 24, and perturbing
one intermediate of the reference by half an ulp moves the logits by up to 72 ULP. Each float32
test records its ``fused``-counted error as a property.
"""
from __future__ import annotations


import numpy as np
import pytest

from conformance.tolerances import assert_parity, assert_tree_parity
from eggroll_torch.models.llm import qrwkv6
from eggroll_torch.models.llm.checkpoints import qrwkv6_state_dict

jax = pytest.importorskip("jax", reason="the JAX reference needs jax")

from _llm_parity import check, load_pair, max_ulp, run_calls  # noqa: E402
from jax_reference.models.llm import qrwkv6 as jqrwkv6  # noqa: E402


N_LAYER, N_HEAD, N_KV_HEAD, HEAD_SIZE, VOCAB = 2, 4, 2, 4, 11
N_TOKENS = 6
CONFIG = {"head_size": HEAD_SIZE}
VARIANTS = ["BaseRWKV", "FastRWKV"]
RESETS = np.array([False, False, True, False, True, False])
# The table's row for a carried recurrent state (see the module docstring).
FLOAT32_KIND = "recurrence"


def build(variant: str, dtype: str):
    sd = qrwkv6_state_dict(0, N_LAYER, N_HEAD, HEAD_SIZE, VOCAB, n_kv_head=N_KV_HEAD)
    return load_pair(getattr(qrwkv6, variant), getattr(jqrwkv6, variant), sd, dtype, dict(CONFIG))


def tokens(n_calls: int = 2, members: int = 0) -> np.ndarray:
    shape = (n_calls, members, N_TOKENS) if members else (n_calls, N_TOKENS)
    return np.random.default_rng(2).integers(0, VOCAB, shape)


def check_float32(results, what, record_property):
    """``results`` within :data:`FLOAT32_KIND`; records the error as ``fused`` counts it."""
    check(results, what, FLOAT32_KIND)
    record_property(f"fused_max_ulp {what}", max_ulp(results, "fused"))


def test_load_matches_reference():
    """Same transformed dict (keys in order, shapes), same params bit for bit (float32 and
    bfloat16), same maps, keys and default state."""
    sd = qrwkv6_state_dict(3, 2, 2, 4, 7, n_kv_head=1)
    got = qrwkv6.BaseRWKV.transform_torch_model({k: v.clone() for k, v in sd.items()})
    expected = jqrwkv6.BaseRWKV.transform_torch_model(sd)
    assert list(got) == list(expected)
    for name in got:
        assert_parity(got[name], expected[name].numpy(), "bits", what=name)
    for dtype in ("float32", "bfloat16"):
        pair = build("BaseRWKV", dtype)
        assert_tree_parity(pair.t.params, pair.j.params, "bits", what=f"QRWKV6 params {dtype}")
        assert pair.t.scan_map == pair.j.scan_map and pair.t.es_map == pair.j.es_map
        assert_tree_parity(pair.tkeys, jax.tree.map(jax.random.key_data, pair.jkeys), "exact", what="es tree keys")
        assert_parity(qrwkv6.BaseRWKV.default_state(pair.t.params, CONFIG),
                      np.asarray(jqrwkv6.BaseRWKV.default_state(pair.j.params, CONFIG)), "exact")


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_float32(variant, record_property):
    """No noise: two calls carrying the state, plain then with ``length`` 4 and ``new_starts``
    resets."""
    pair = build(variant, "float32")
    check_float32(run_calls(pair, "noop", tokens(), False, CONFIG), f"{variant} noop", record_property)
    check_float32(run_calls(pair, "noop", tokens(), False, CONFIG, length=4, new_starts=RESETS),
                  f"{variant} length/new_starts", record_property)


def test_length_zero(record_property):
    """``length = 0``: the shift row wraps to the last token and the incoming state matrices are
    kept, as the reference's are."""
    results = run_calls(build("BaseRWKV", "float32"), "noop", tokens(), False, CONFIG, length=0)
    check_float32(results, "length 0", record_property)
    (_, first), (_, second) = results[0][0], results[1][0]
    assert np.array_equal(second[:, 1:].numpy(), first[:, 1:].numpy())


def test_forward_eggroll_population(record_property):
    """Four EGGROLL members at once (two epochs, antithetic pairs) against ``vmap`` of the
    reference: two calls carrying the state, with ``length`` 4 and ``new_starts`` resets. (FastRWKV
    runs the same torch code as BaseRWKV.)"""
    results = run_calls(build("BaseRWKV", "float32"), "eggroll", tokens(members=4), True, CONFIG, length=4,
                        new_starts=RESETS)
    check_float32(results, "BaseRWKV eggroll", record_property)
    logits = results[0][0][0]
    assert not np.array_equal(logits[0].numpy(), logits[1].numpy())


def test_forward_per_member_resets(record_property):
    """``new_starts`` per member ``(N, T)``: each member resets at its own tokens, as that member
    alone does in the reference."""
    per_member = np.stack([np.roll(RESETS, m) for m in range(4)])
    results = run_calls(build("BaseRWKV", "float32"), "eggroll", tokens(members=4), True, CONFIG, length=5,
                        new_starts=per_member)
    check_float32(results, "per-member resets", record_property)


def test_forward_bfloat16(record_property):
    """bfloat16 params, EGGROLL members, ``length`` and resets, within ``fused``."""
    results = run_calls(build("BaseRWKV", "bfloat16"), "eggroll", tokens(members=4), True, CONFIG, length=5,
                        new_starts=RESETS)
    check(results, "BaseRWKV bfloat16")
    record_property("fused_max_ulp bfloat16", max_ulp(results, "fused"))
