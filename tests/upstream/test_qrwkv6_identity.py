"""jax_reference.models.llm.qrwkv6 against upstream's models/llm/qrwkv6.py: identical bits.

Both sides load the same random checkpoint (the Hugging Face ``RWKV6Qwen2ForCausalLM`` key layout,
built locally by ``_upstream_llm.qrwkv6_state_dict``) with ``config = {"head_size": S}`` through
their own ``load_from_torch`` and run the same probe:

- a chain of two calls, the first from ``default_state`` with the default ``length``/``new_starts``,
  the second carrying the first's state with ``length = T - 1`` and a reset (``new_starts``) at
  ``T // 2``; unperturbed (EggRoll, ``iterinfo=None``), for both variants and both dtypes, eager
  vs eager and jit vs jit;
- the second call for four population members with EGGROLL noise (vmapped), for a subset of
  (variant, dtype, mode) in which each variant meets each dtype and each mode once (XLA:CPU
  compiles the noise's threefry draws slowly, and a jitted FastRWKV unrolls its layers, so every
  combination would take several minutes for no new code path);
- one and two jitted ``EggRoll.do_updates`` through the model's es_map/scan_map, one case with
  ``use_batched_update`` (which buckets ``time_maa_w2``'s ``(L, 5)`` keys);
- the init trees (params, scan_map, es_map, es keys, default state) and the in-place transform.

The configs vary layers (1-3), heads (2-4, with and without grouped key/value heads), head size (4,
8) and length (4-6 tokens); every checkpoint has channels whose log decay is clipped at -5. Then
the two variants are compared with each other, on each side, within a tolerance.
"""
from __future__ import annotations

import jax
import numpy as np
import pytest

pytest.importorskip("torch", reason="loading a checkpoint goes through torch tensors")

from _same_api import assert_same_api  # noqa: E402
from _upstream_llm import Config, Probe, Side, compare, load_upstream_llm, qrwkv6_state_dict, quiet  # noqa: E402
import jax_reference.models.common as ours_common  # noqa: E402
import jax_reference.models.llm.qrwkv6 as ours_qrwkv6  # noqa: E402
import jax_reference.noiser as ours_noiser  # noqa: E402

pytestmark = [pytest.mark.upstream]

VARIANTS = ("BaseRWKV", "FastRWKV")

# One config per dtype for the unperturbed runs, shared by both variants so that they can be
# compared with each other; the noise and update cases use other shapes.
PLAIN = {"float32": Config(2, 4, 4, 5, "float32", 0, n_kv_head=2), "bfloat16": Config(3, 2, 8, 6, "bfloat16", 1)}
NOISY = [
    ("BaseRWKV", Config(1, 2, 4, 4, "float32", 2), "jit"),
    ("FastRWKV", Config(2, 4, 4, 4, "bfloat16", 3, n_kv_head=1), "jit"),
    ("BaseRWKV", Config(2, 2, 8, 5, "bfloat16", 4), "eager"),
    ("FastRWKV", Config(3, 4, 4, 4, "float32", 5, n_kv_head=2), "eager"),
]
UPDATES = [(Config(2, 2, 4, 4, "float32", 7), False), (Config(3, 4, 4, 4, "bfloat16", 8, n_kv_head=2), True)]
# Largest |difference| allowed between the two variants' logits and states, relative to the
# largest |value| of BaseRWKV's: a scan and an unrolled loop may fuse differently under jit.
CROSS_TOLERANCE = {"float32": 1e-5, "bfloat16": 5e-2}


def model_config(cfg):
    """The model config ``load_from_torch`` and ``default_state`` expect (a fresh dict each time)."""
    return {"head_size": cfg.head_size}


PROBE = Probe(lambda cfg: qrwkv6_state_dict(cfg.seed, cfg.n_layer, cfg.n_head, cfg.head_size, cfg.vocab_size,
                                            cfg.n_kv_head),
              model_config, "BaseRWKV", PLAIN)


@pytest.fixture(scope="module")
def sides(hs):
    """(upstream, ours): each side's qrwkv6 module, noiser package and models.common."""
    return (Side(load_upstream_llm(hs).qrwkv6, hs.noiser, hs.models.common),
            Side(ours_qrwkv6, ours_noiser, ours_common))


@pytest.mark.parametrize("mode", ["eager", "jit"])
@pytest.mark.parametrize("dtype", list(PLAIN))
@pytest.mark.parametrize("variant", VARIANTS)
def test_plain_forward_matches_upstream(sides, ledger, variant, dtype, mode):
    theirs, ours = PROBE.plain_pair(sides, variant, dtype, mode)
    out = ours["out"]
    # The probe reaches what it means to: the state carries over, the floor of the log decay is hit.
    assert not np.array_equal(out["state1"], ours["state0"])
    assert np.all(np.isfinite(np.asarray(out["logits2"], dtype=np.float32)))
    decay = np.asarray(ours["init"][1]["blocks"]["self_attn"]["time_decay"], dtype=np.float32)
    assert np.any(-np.exp(decay) < -5)
    compare(ledger, ours, theirs, f"qrwkv6 {variant} {dtype} [{mode}]")


@pytest.mark.parametrize("variant, cfg, mode", NOISY, ids=[f"{v}-{c.dtype}-{m}" for v, c, m in NOISY])
def test_noisy_members_match_upstream(sides, ledger, variant, cfg, mode):
    theirs, ours = (PROBE.noisy_outputs(side, variant, cfg, mode) for side in sides)
    logits = np.asarray(ours["logits"], dtype=np.float32)
    # Antithetic pairs differ from each other: the noise reaches the output.
    assert not np.array_equal(logits[0], logits[1])
    assert np.all(np.isfinite(logits))
    compare(ledger, ours, theirs, f"qrwkv6 noisy {variant} {cfg} [{mode}]")


@pytest.mark.parametrize("cfg, batched", UPDATES, ids=[f"{c.dtype}-{'batched' if b else 'plain'}" for c, b in UPDATES])
def test_es_updates_match_upstream(sides, ledger, cfg, batched):
    theirs, ours = (PROBE.update_outputs(side, cfg, batched) for side in sides)
    _, init, _ = PROBE.load(sides[1], "BaseRWKV", cfg)
    moved = jax.tree.map(lambda a, b: not np.array_equal(a, b), init.params, ours["after_1"]["params"])
    # MM_PARAM and PARAM leaves move; EXCLUDED ones (the tables and time_maa_w2) stay.
    attn = moved["blocks"]["self_attn"]
    assert attn["q_proj"]["weight"] and attn["q_proj"]["bias"] and attn["time_maa_w1"] and attn["time_decay"]
    assert not attn["time_maa_w2"] and not moved["embed_tokens"]["weight"] and not moved["lm_head"]["weight"]
    compare(ledger, ours, theirs, f"qrwkv6 do_updates {cfg} batched={batched}")


def test_maps_match_upstream_for_every_variant(sides, ledger):
    """scan_map and es_map of each variant equal upstream's (and each other's), and match the
    loaded params' structure."""
    cfg = PLAIN["float32"]
    maps = {}
    for name, side in zip(("upstream", "ours"), sides):
        for variant in VARIANTS:
            model = getattr(side.model, variant)
            maps[name, variant] = (model.get_scan_map(model_config(cfg)), model.get_es_map(model_config(cfg)))
            _, init, _ = PROBE.load(side, variant, cfg)
            assert (init.scan_map, init.es_map) == maps[name, variant]
            assert jax.tree.structure(init.params) == jax.tree.structure(init.es_map)
    for variant in VARIANTS:
        compare(ledger, maps["ours", variant], maps["upstream", variant], f"qrwkv6 maps {variant}")
        assert maps["ours", variant] == maps["ours", "BaseRWKV"]


def test_transform_and_errors_match_upstream(sides):
    """``transform_torch_model`` renames and squeezes the dict in place the same way (same keys in
    the same order, same shapes and bytes); a one-layer checkpoint loads; without a config
    ``default_state`` fails alike (``head_size`` comes from the config only)."""
    results = []
    for side in sides:
        sd = qrwkv6_state_dict(9, 2, 2, 4, 7, n_kv_head=1)
        with quiet():
            out = side.model.BaseRWKV.transform_torch_model(sd)
        assert out is sd
        results.append([(k, tuple(v.shape), v.numpy().tobytes()) for k, v in out.items()])
        with quiet():
            init = side.model.BaseRWKV.load_from_torch(qrwkv6_state_dict(9, 1, 2, 4, 7), {"head_size": 4}, "float32")
        assert init.params["blocks"]["self_attn"]["time_maa_w2"].shape == (1, 5, 4, 8)
        with pytest.raises(TypeError):
            side.model.BaseRWKV.default_state(init.params, None)
    assert results[0] == results[1]
    names = [name for name, *_ in results[1]]
    assert names[0] == "lm_head.weight" and "blocks.1.self_attn.time_decay" in names
    shapes = dict((name, shape) for name, shape, _ in results[1])
    assert shapes["blocks.0.self_attn.time_maa_x"] == (8,) and shapes["blocks.0.self_attn.time_maa_w2"] == (5, 4, 8)


def test_variants_agree_with_each_other(sides, record_property):
    """On each side, FastRWKV's unperturbed chain is close to BaseRWKV's (jitted)."""
    for dtype in PLAIN:
        largest = 0.0
        for side_index, side_name in enumerate(("upstream", "ours")):
            ref, got = ({k: np.asarray(v, dtype=np.float32)
                         for k, v in PROBE.plain_pair(sides, variant, dtype, "jit")[side_index]["out"].items()}
                        for variant in VARIANTS)
            for name in ref:
                diff = float(np.max(np.abs(got[name] - ref[name])))
                scale = float(np.max(np.abs(ref[name])))
                assert diff <= CROSS_TOLERANCE[dtype] * scale, (side_name, dtype, name, diff, scale)
                largest = max(largest, diff)
        record_property(f"largest_cross_variant_diff_{dtype}", largest)


def test_same_names_and_signatures(sides, ledger):
    """Every function and class upstream's qrwkv6.py defines exists here, with the same signatures
    for each classmethod a class defines (found here on the class or a base)."""
    assert assert_same_api(sides[0].model, ours_qrwkv6) == 5
    ledger.cases += 1
