"""How often bfloat16 logits that differ in the last bits flip a sampled token (issue 18's report).

The torch and JAX RWKV-7 agree within the ``recurrence`` tolerance, not bit for bit, so in
bfloat16 some logits differ in their last bit. ``llm.*`` checks run in float32, where the tokens
are identical; this measures the bfloat16 case instead of hiding it: one population forward of a
small random RWKV-7 with EGGROLL noise on both sides (``members x tokens`` logit rows, each a
draw), then every row sampled with the same key on both sides (temperature 1 and greedy), and the
rows whose token differs counted.

``python -m conformance.llm_flips [--out reports/llm_bf16_sampling.json]``; ``make conformance``
renders the file into ``reports/COMPATIBILITY.md`` when it exists.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path("reports") / "llm_bf16_sampling.json"
# 100 members x 100 tokens = 10,000 draws; a vocabulary of 512 so that near-ties are common.
MEMBERS, TOKENS, VOCAB, SHAPE = 100, 100, 512, (2, 2, 8)


def measure(members: int = MEMBERS, tokens: int = TOKENS) -> dict:
    """The counts over ``members * tokens`` draws (see the module docstring)."""
    import jax
    import jax.numpy as jnp
    import torch

    import jax_reference.llm as jl
    from eggroll_torch import llm as tl
    from eggroll_torch import random as es_random
    from eggroll_torch.models.common import simple_es_tree_key
    from eggroll_torch.models.llm import rwkv7 as trwkv7
    from eggroll_torch.models.llm.checkpoints import rwkv7_state_dict
    from eggroll_torch.noiser.eggroll import EggRoll
    from jax_reference.models.common import simple_es_tree_key as jax_tree_key
    from jax_reference.models.llm import rwkv7 as jrwkv7
    from jax_reference.noiser.eggroll import EggRoll as JaxEggRoll

    state_dict = rwkv7_state_dict(11, *SHAPE, VOCAB, lora_dims=(4, 4, 2, 4))
    stream = np.random.default_rng(0).integers(1, VOCAB, (members, tokens)).astype(np.int32)
    epochs, threads = np.zeros(members, np.int32), np.arange(members, dtype=np.int32)

    tinit = trwkv7.ScanRWKV.load_from_torch(dict(state_dict), None, torch.bfloat16)
    tkeys = simple_es_tree_key(tinit.params, es_random.key(3), tinit.scan_map)
    tfrozen, tnp = EggRoll.init_noiser(tinit.params, 0.05, 0.1, rank=1)
    state = trwkv7.ScanRWKV.default_state(tinit.params, None).expand(members, -1, -1, -1)
    with torch.no_grad():
        torch_logits, _ = trwkv7.ScanRWKV.forward(EggRoll, tfrozen, tnp, None, tinit.params, tkeys,
                                                  (torch.from_numpy(epochs), torch.from_numpy(threads)),
                                                  torch.from_numpy(stream), state)

    jinit = jrwkv7.ScanRWKV.load_from_torch(dict(state_dict), None, jnp.bfloat16)
    jkeys = jax_tree_key(jinit.params, jax.random.key(3), jinit.scan_map)
    jfrozen, jnp_params = JaxEggRoll.init_noiser(jinit.params, 0.05, 0.1, rank=1)

    @jax.jit
    def reference(epochs, threads, stream):
        def member(it, row):
            return jrwkv7.ScanRWKV.forward(JaxEggRoll, jfrozen, jnp_params, None, jinit.params, jkeys, it, row,
                                           jrwkv7.ScanRWKV.default_state(jinit.params, None))[0]
        return jax.vmap(member)((epochs, threads), stream)

    jax_logits = reference(jnp.asarray(epochs), jnp.asarray(threads), jnp.asarray(stream))
    ours = torch_logits.float().numpy().reshape(-1, VOCAB)
    theirs = np.asarray(jax_logits, dtype=np.float32).reshape(-1, VOCAB)
    rows = ours.shape[0]
    words = np.stack([np.asarray(jax.random.key_data(jax.random.fold_in(jax.random.key(7), i))) for i in range(rows)])
    jax_sample = jax.jit(jax.vmap(lambda k, row, t: jl.sample_token(k, row, t), in_axes=(0, 0, None)),
                         static_argnums=2)
    counts = {}
    for name, temperature in (("temperature_1", 1.0), ("greedy", 0.0)):
        mine = tl.sample_token(es_random.wrap_key_data(words), torch.from_numpy(ours).to(torch.bfloat16), temperature)
        other = jax_sample(jax.random.wrap_key_data(jnp.asarray(words)), jnp.asarray(theirs, jnp.bfloat16),
                           temperature)
        counts[name] = int(np.sum(mine.numpy() != np.asarray(other)))
    differing = ours != theirs
    # Differences in units of the last place of each row's largest logit (bfloat16 keeps 8
    # significant bits), the scale at which sampling sees them; near-zero logits would inflate a
    # per-element ULP without mattering to the draw.
    scale = np.max(np.abs(theirs), axis=1, keepdims=True)
    ulp = np.exp2(np.floor(np.log2(np.maximum(scale, np.finfo(np.float32).tiny))) - 7)
    ulps = np.abs(ours - theirs) / ulp
    return {
        "draws": rows, "vocab": VOCAB, "model": {"n_layer": SHAPE[0], "n_head": SHAPE[1], "head_size": SHAPE[2]},
        "rows_with_a_differing_logit": int(np.sum(differing.any(axis=1))),
        "differing_logits": int(np.sum(differing)), "logits": int(differing.size),
        "median_ulp_of_differing": float(np.median(ulps[differing])) if differing.any() else 0.0,
        "max_ulp": float(ulps.max()),
        "flipped_tokens": counts,
        "versions": {"torch": torch.__version__, "jax": jax.__version__},
    }


def render(result: dict) -> list[str]:
    """The COMPATIBILITY.md section for a :func:`measure` result."""
    draws = result["draws"]
    flips = result["flipped_tokens"]
    return [
        "## bfloat16 sampling in the LLM loop", "",
        f"The `llm.*` checks run in float32, where every generated token is identical. In bfloat16 the torch "
        f"and JAX RWKV-7 logits agree within tolerance but not bit for bit, and a last-bit difference can "
        f"flip a sampled token. Measured over {draws:,} draws (one noisy population forward of a random "
        f"{result['model']['n_layer']}-layer RWKV-7, vocabulary {result['vocab']}, each row sampled with the "
        "same key on both sides; `python -m conformance.llm_flips`):", "",
        "| | count | share |", "|---|---|---|",
        f"| logit rows with any differing logit | {result['rows_with_a_differing_logit']:,} | "
        f"{result['rows_with_a_differing_logit'] / draws:.2%} |",
        f"| differing logits | {result['differing_logits']:,} of {result['logits']:,} | "
        f"{result['differing_logits'] / result['logits']:.2%} |",
        f"| median / largest difference of a differing logit, in ULP of its row's largest logit | "
        f"{result['median_ulp_of_differing']:g} / {result['max_ulp']:g} | |",
        f"| sampled tokens flipped, temperature 1 | {flips['temperature_1']:,} | "
        f"{flips['temperature_1'] / draws:.2%} |",
        f"| greedy tokens flipped | {flips['greedy']:,} | {flips['greedy'] / draws:.2%} |",
        "", f"Versions: {', '.join(f'{k} {v}' for k, v in result['versions'].items())}.", "",
    ]


def load(report_dir: Path) -> dict | None:
    """The saved result under ``report_dir``, or None."""
    path = Path(report_dir) / DEFAULT_OUT.name
    return json.loads(path.read_text()) if path.is_file() else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.llm_flips", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)
    result = measure()
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("\n".join(render(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
