"""jax_reference.models.llm (LLM, RWKV-7) against upstream's models/llm/{llm,rwkv7}.py: identical bits.

Both sides load the same random checkpoint (official RWKV-7 ``.pth`` key layout, built locally by
``_upstream_llm.rwkv7_state_dict``) through their own ``load_from_torch`` and run the same probe:

- a chain of two calls, the first with the default ``length``/``new_starts`` from
  ``default_state``, the second carrying the first's state with ``length = T - 1`` and a reset
  (``new_starts``) at ``T // 2``; unperturbed (EggRoll, ``iterinfo=None``), for every variant and
  dtype, eager vs eager and jit vs jit;
- the second call for four population members with EGGROLL noise (vmapped), for a subset of
  (variant, dtype, mode) that covers each variant, each dtype and each mode (XLA:CPU compiles the
  noise's threefry draws slowly: every combination would take many minutes; a jitted noisy
  FastRWKV alone, which unrolls its layers, takes over 10 s per side);
- one and two ``EggRoll.do_updates`` through the models' es_map/scan_map (jitted);
- the init trees (params, scan_map, es_map, es keys, default state).

Then the four variants are compared with each other, on each side, within a tolerance.
"""
from __future__ import annotations

import sys

import jax
import numpy as np
import pytest

pytest.importorskip("torch", reason="loading a checkpoint goes through torch tensors")

from _same_api import assert_same_api  # noqa: E402
from _upstream_llm import Config, Probe, Side, compare, load_upstream_llm, quiet, rwkv7_state_dict  # noqa: E402
import jax_reference.models.common as ours_common  # noqa: E402
import jax_reference.models.llm.llm as ours_llm  # noqa: E402
import jax_reference.models.llm.rwkv7 as ours_rwkv7  # noqa: E402
import jax_reference.noiser as ours_noiser  # noqa: E402

pytestmark = [pytest.mark.upstream]

VARIANTS = ("BaseRWKV", "ScanRWKV", "AssociativeScanRWKV", "FastRWKV")

# One config per dtype for the unperturbed runs, shared by the four variants so that they can be
# compared with each other; the noise and update cases use other shapes.
PLAIN = {"float32": Config(2, 2, 4, 5, "float32", 0), "bfloat16": Config(3, 3, 4, 5, "bfloat16", 1)}
NOISY = [
    ("BaseRWKV", Config(2, 1, 8, 4, "float32", 2), "jit"),
    ("ScanRWKV", Config(3, 2, 4, 4, "bfloat16", 3), "jit"),
    ("AssociativeScanRWKV", Config(2, 2, 4, 4, "float32", 4), "eager"),
    ("FastRWKV", Config(3, 2, 4, 4, "bfloat16", 5), "eager"),
]
UPDATES = [Config(2, 2, 4, 4, "float32", 7), Config(3, 1, 8, 4, "bfloat16", 8)]
# Largest |difference| allowed between two variants' logits and states, relative to the largest
# |value| of the reference (BaseRWKV): the associative scan multiplies in another order.
CROSS_TOLERANCE = {"float32": 1e-5, "bfloat16": 5e-2}

# RWKV-7 takes no model config; its updates run through ScanRWKV's maps.
PROBE = Probe(lambda cfg: rwkv7_state_dict(cfg.seed, cfg.n_layer, cfg.n_head, cfg.head_size, cfg.vocab_size),
              lambda cfg: None, "ScanRWKV", PLAIN)


@pytest.fixture(scope="module")
def sides(hs):
    """(upstream, ours): each side's rwkv7 module, noiser package and models.common."""
    llm = load_upstream_llm(hs)
    return (Side(llm.rwkv7, hs.noiser, hs.models.common),
            Side(ours_rwkv7, ours_noiser, ours_common))


@pytest.mark.parametrize("mode", ["eager", "jit"])
@pytest.mark.parametrize("dtype", list(PLAIN))
@pytest.mark.parametrize("variant", VARIANTS)
def test_plain_forward_matches_upstream(sides, ledger, variant, dtype, mode):
    theirs, ours = PROBE.plain_pair(sides, variant, dtype, mode)
    out = ours["out"]
    # The probe reaches what it means to: the state carries over and the reset changes the output.
    assert not np.array_equal(out["state1"], ours["state0"])
    assert np.all(np.isfinite(np.asarray(out["logits2"], dtype=np.float32)))
    compare(ledger, ours, theirs, f"rwkv7 {variant} {dtype} [{mode}]")


@pytest.mark.parametrize("variant, cfg, mode", NOISY, ids=[f"{v}-{c.dtype}-{m}" for v, c, m in NOISY])
def test_noisy_members_match_upstream(sides, ledger, variant, cfg, mode):
    theirs, ours = (PROBE.noisy_outputs(side, variant, cfg, mode) for side in sides)
    logits = np.asarray(ours["logits"], dtype=np.float32)
    # Antithetic pairs differ from each other: the noise reaches the output.
    assert not np.array_equal(logits[0], logits[1])
    assert np.all(np.isfinite(logits))
    compare(ledger, ours, theirs, f"rwkv7 noisy {variant} {cfg} [{mode}]")


@pytest.mark.parametrize("cfg", UPDATES, ids=lambda c: c.dtype)
def test_es_updates_match_upstream(sides, ledger, cfg):
    theirs, ours = (PROBE.update_outputs(side, cfg) for side in sides)
    _, init, _ = PROBE.load(sides[1], "ScanRWKV", cfg)
    moved = jax.tree.map(lambda a, b: not np.array_equal(a, b), init.params, ours["after_1"]["params"])
    # MM_PARAM and PARAM leaves move, EXCLUDED ones (emb, head) stay.
    assert moved["blocks"]["att"]["key"]["weight"] and moved["blocks"]["att"]["x_r"]
    assert not moved["emb"]["weight"] and not moved["head"]["weight"]
    compare(ledger, ours, theirs, f"rwkv7 do_updates {cfg}")


def test_maps_match_upstream_for_every_variant(sides, ledger):
    """scan_map and es_map of each variant equal upstream's (and each other's)."""
    cfg = PLAIN["float32"]
    maps = {}
    for name, side in zip(("upstream", "ours"), sides):
        for variant in VARIANTS:
            model = getattr(side.model, variant)
            maps[name, variant] = (model.get_scan_map(None), model.get_es_map(None))
            _, init, _ = PROBE.load(side, variant, cfg)
            assert (init.scan_map, init.es_map) == maps[name, variant]
            assert jax.tree.structure(init.params) == jax.tree.structure(init.es_map)
    for variant in VARIANTS:
        compare(ledger, maps["ours", variant], maps["upstream", variant], f"rwkv7 maps {variant}")
        assert maps["ours", variant] == maps["ours", "BaseRWKV"]


def test_transform_and_errors_match_upstream(sides):
    """``transform_torch_model`` changes the dict in place the same way; a one-layer checkpoint
    cannot be loaded (layer 0's zero value-residual weights are shaped like layer 1's); the LLM
    base's unimplemented hooks raise ``NotImplementedError``; ``get_int_component`` agrees."""
    results = []
    for side in sides:
        sd = rwkv7_state_dict(9, 2, 1, 4, 7)
        with quiet():
            out = side.model.BaseRWKV.transform_torch_model(sd)
        assert out is sd
        results.append({k: (tuple(v.shape), v.numpy().tobytes()) for k, v in out.items()})
        with pytest.raises(KeyError), quiet():
            side.model.BaseRWKV.load_from_torch(rwkv7_state_dict(9, 1, 1, 4, 7), None, "float32")
        llm = side.model.LLM
        for hook, args in [("get_scan_map", (None,)), ("get_es_map", (None,)), ("default_state", (None, None)),
                           ("randomize_weights", (None,) * 6), ("embed", (None, None)),
                           ("outhead", (None, None)), ("forward_seq", (None,) * 5)]:
            with pytest.raises(NotImplementedError):
                getattr(llm, hook)(*args)
    assert results[0] == results[1]
    assert list(results[0]) == list(results[1])
    theirs_llm = sys.modules[sides[0].model.LLM.__module__]
    for key in ("emb.weight", "blocks.12.att.key.weight", "a.3.b.10.c"):
        assert ours_llm.get_int_component(key) == theirs_llm.get_int_component(key)


def test_variants_agree_with_each_other(sides, record_property):
    """On each side, every variant's unperturbed chain is close to BaseRWKV's, except where the
    associative scan's reset handling differs (see ``AssociativeScanRWKV.inner_loop``): its
    second-call logits just before the reset, which it must get wrong on both sides alike."""
    reset_row = {dtype: cfg.n_tokens // 2 - 1 for dtype, cfg in PLAIN.items()}
    for dtype in PLAIN:
        largest = 0.0
        for side_index, side_name in enumerate(("upstream", "ours")):
            ref = PROBE.plain_pair(sides, "BaseRWKV", dtype, "jit")[side_index]["out"]
            ref = {k: np.asarray(v, dtype=np.float32) for k, v in ref.items()}
            for variant in VARIANTS[1:]:
                got = {k: np.asarray(v, dtype=np.float32)
                       for k, v in PROBE.plain_pair(sides, variant, dtype, "jit")[side_index]["out"].items()}
                if variant == "AssociativeScanRWKV":
                    row = reset_row[dtype]
                    assert not np.allclose(got["logits2"][row], ref["logits2"][row])
                    got["logits2"] = np.delete(got["logits2"], row, axis=0)
                    ref_cmp = dict(ref, logits2=np.delete(ref["logits2"], row, axis=0))
                else:
                    ref_cmp = ref
                for name in ref_cmp:
                    diff = float(np.max(np.abs(got[name] - ref_cmp[name])))
                    scale = float(np.max(np.abs(ref_cmp[name])))
                    assert diff <= CROSS_TOLERANCE[dtype] * scale, (side_name, variant, dtype, name, diff, scale)
                    largest = max(largest, diff)
        record_property(f"largest_cross_variant_diff_{dtype}", largest)


def test_same_names_and_signatures(sides, ledger):
    """Every function and class upstream's llm.py and rwkv7.py define exists here, with the same
    signatures for functions and for each classmethod a class defines (found here on the class or
    a base)."""
    theirs_rwkv7 = sides[0].model
    pairs = [(sys.modules[theirs_rwkv7.LLM.__module__], ours_llm), (theirs_rwkv7, ours_rwkv7)]
    checked = sum(assert_same_api(theirs, ours) for theirs, ours in pairs)
    assert checked == 12
    ledger.cases += 1
