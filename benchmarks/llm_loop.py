"""Issue 18's speed: one generation of the LLM evolution loop, ours against the JAX reference's.

``python -m benchmarks.llm_loop --device cuda`` (defaults: RWKV-7 0.1B shape with random weights,
bfloat16, N=512 members, 64 prompt + 128 generated tokens) times, in one process:

- ``torch_loop``: ``eggroll_torch.llm`` generation of every member with its EGGROLL noise;
- ``torch_plain``: the same loop with the no-op noiser (pure batched generation, no noise);
- ``jax_loop``: ``jax_reference.llm``'s jitted, member-vmapped generation (upstream's layout).

It prints tokens/s of each and the ratios ``torch_loop / jax_loop`` (goal >= 1.5) and
``torch_loop / torch_plain`` (goal >= 0.85), as JSON lines, with the card and versions. With
``--compile`` both torch sides are also timed with the model's forward compiled
(``build_generate_batch(..., compile=True)``): ``torch_loop_compiled`` and
``torch_plain_compiled``, with the same two ratios (``compiled_loop_over_jax``,
``compiled_loop_over_plain``).

Each side is run once untimed (CUDA-graph capture, kernel compiles, autotuning), then timed
``--reps`` (torch) or ``--jax-reps`` (JAX) times; the best time counts. The JAX side is compiled
ahead of time (``lower().compile()``, timed as ``jax_compile``) on ``jax.devices()[0]``, which must
be a GPU when ``--device cuda``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys


def _parser():
    parser = argparse.ArgumentParser(prog="python -m benchmarks.llm_loop", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    parser.add_argument("--shape", default="0.1B", help="a key of RWKV7_SHAPES or L,H,S,V for a small model")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="bfloat16")
    parser.add_argument("--members", type=int, default=512)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--generate", type=int, default=128)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--jax-reps", type=int, default=2,
                        help="timed calls of the ahead-of-time compiled JAX generation, after one untimed call")
    parser.add_argument("--skip-jax", action="store_true")
    parser.add_argument("--out", default=None,
                        help="also write the results as JSON here (e.g. reports/bench_cuda_llm_loop.json, which "
                             "python -m benchmarks report renders)")
    parser.add_argument("--compile", action="store_true",
                        help="also time both torch sides with the model's forward compiled (torch.compile)")
    parser.add_argument("--no-cuda-graph", dest="cuda_graph", action="store_false",
                        help="run the torch token steps eagerly instead of replaying them as CUDA graphs")
    return parser


def _shape(text):
    from eggroll_torch.models.llm.checkpoints import RWKV7_SHAPES

    if text in RWKV7_SHAPES:
        return RWKV7_SHAPES[text]
    n_layer, n_head, head_size, vocab = (int(v) for v in text.split(","))
    return {"n_layer": n_layer, "n_head": n_head, "head_size": head_size, "vocab_size": vocab,
            "lora_dims": (8, 8, 4, 8)}


def _prompts(members, prompt, total, vocab):
    import numpy as np

    rng = np.random.default_rng(0)
    rows = np.zeros((members, total), dtype=np.int32)
    rows[:, :prompt] = rng.integers(1, vocab, (members, prompt))
    return rows


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    for flag, value in (("--reps", args.reps), ("--jax-reps", args.jax_reps)):
        if value < 1:
            parser.error(f"{flag} must be >= 1 (the number of timed calls), got {value}")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if args.device == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"
    import time

    import torch

    from eggroll_torch import tree
    from eggroll_torch.llm import EvolutionConfig, build_generate_batch, master_keys
    from eggroll_torch.models.common import simple_es_tree_key
    from eggroll_torch.models.llm import rwkv7
    from eggroll_torch.models.llm.checkpoints import rwkv7_state_dict
    from eggroll_torch.noiser import all_noisers

    shape = _shape(args.shape)
    total = args.prompt + args.generate
    tokens_per_call = args.members * total
    state_dict = rwkv7_state_dict(0, **shape)
    prompts = _prompts(args.members, args.prompt, total, shape["vocab_size"])
    config = EvolutionConfig(generation_length=total, parallel_generations=args.members, generations_per_prompt=8,
                             sigma=1e-3, temperature=1.0)
    device = torch.device(args.device)
    info = {"device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor(),
            "cuda_graph": args.cuda_graph, "compile": args.compile,
            "torch": torch.__version__, "dtype": args.dtype, "members": args.members, "prompt": args.prompt,
            "generate": args.generate, "shape": args.shape, "reps": args.reps, "jax_reps": args.jax_reps}
    results = {}

    def timed(name, fn, sync, reps):
        fn()
        sync()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
        seconds = min(times)
        results[name] = {"seconds": seconds, "tokens_per_s": tokens_per_call / seconds}
        print(json.dumps({"measure": name, **results[name]}), flush=True)

    def measure_torch():
        sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
        init = rwkv7.ScanRWKV.load_from_torch(dict(state_dict), None, getattr(torch, args.dtype))
        params = tree.map(lambda x: x.to(device), init.params)
        es_key, gen_key, _ = master_keys(0, device)
        keys = simple_es_tree_key(params, es_key, init.scan_map)
        torch_prompts = torch.from_numpy(prompts).to(device)
        threads = torch.arange(args.members, device=device)
        for compiled in (False, True) if args.compile else (False,):
            for name, noiser in (("torch_loop", "eggroll"), ("torch_plain", "noop")):
                NOISER = all_noisers[noiser]
                frozen, nparams = NOISER.init_noiser(params, config.sigma, config.lr_scale, group_size=8,
                                                     freeze_nonlora=True, noise_reuse=1, rank=1)
                generate = build_generate_batch(rwkv7.ScanRWKV, NOISER, frozen, None, keys, gen_key,
                                                config.temperature, cuda_graph=args.cuda_graph, compile=compiled)
                timed(name + "_compiled" * compiled,
                      lambda g=generate, f=nparams: g(f, params, torch_prompts, threads, 0), sync, args.reps)

    def write_results():
        """The summary so far, also written to ``--out`` after each side and after JAX's compile,
        so that a JAX side that fails or is killed leaves what was measured."""
        ratios = {}
        for prefix, loop in (("torch", "torch_loop"), ("compiled", "torch_loop_compiled")):
            if loop not in results:
                continue
            plain = loop.replace("loop", "plain")
            ratios[f"{prefix}_loop_over_plain"] = results[loop]["tokens_per_s"] / results[plain]["tokens_per_s"]
            if "jax_loop" in results:
                ratios[f"{prefix}_loop_over_jax"] = results[loop]["tokens_per_s"] / results["jax_loop"]["tokens_per_s"]
        summary = {"info": info, "ratios": ratios,
                   "goals": {"torch_loop_over_jax": 1.5, "torch_loop_over_plain": 0.85}}
        if args.out:
            if not environment:
                from .environment import describe

                # Once: it runs git and starts JAX's backend.
                environment.update(describe(args.device, "highest"))
            with open(args.out, "w") as f:
                json.dump({"llm_loop": {**summary, "measurements": results}, "environment": environment}, f,
                          indent=1)
        return summary

    environment = {}
    measure_torch()
    if args.device == "cuda":
        # The JAX side allocates on the same GPU (describing the environment already starts its
        # backend): hand back what torch's caching allocator keeps.
        torch.cuda.empty_cache()
    write_results()
    if not args.skip_jax:
        import jax
        import jax.numpy as jnp

        import jax_reference.llm as jl
        from jax_reference.models.common import simple_es_tree_key as jax_tree_key
        from jax_reference.models.llm import rwkv7 as jrwkv7
        from jax_reference.noiser import all_noisers as jax_noisers

        info["jax"] = jax.__version__
        jinit = jrwkv7.ScanRWKV.load_from_torch(dict(state_dict), None, getattr(jnp, args.dtype))
        # load_from_torch commits the params to the host CPU (as upstream's does); without an
        # explicit device, jit would follow them there and time XLA:CPU.
        jax_device = jax.devices()[0]
        if args.device == "cuda" and jax_device.platform != "gpu":
            raise SystemExit(f"--device cuda: JAX's first device is {jax_device} (platform {jax_device.platform!r}), "
                             "so the JAX side would not run on the GPU; install jax with CUDA, or pass --skip-jax")
        info["jax_device"] = str(jax_device)
        jparams = jax.device_put(jinit.params, jax_device)
        jes, jgen, _ = jl.master_keys(0)
        jkeys = jax_tree_key(jparams, jes, jinit.scan_map)
        NOISER = jax_noisers["eggroll"]
        frozen, nparams = NOISER.init_noiser(jparams, config.sigma, config.lr_scale, group_size=8,
                                             freeze_nonlora=True, noise_reuse=1, rank=1)
        generate = jl.build_generate_batch(jrwkv7.ScanRWKV, NOISER, frozen, None, jkeys, jgen, config.temperature)
        jprompts, jthreads = jnp.asarray(prompts), jnp.arange(args.members)
        t0 = time.perf_counter()
        compiled = generate.lower(nparams, jparams, jprompts, jthreads, 0).compile()
        results["jax_compile"] = {"seconds": time.perf_counter() - t0}
        print(json.dumps({"measure": "jax_compile", **results["jax_compile"]}), flush=True)
        write_results()
        out = {}

        def run_jax():
            out["tokens"] = compiled(nparams, jparams, jprompts, jthreads, 0)

        timed("jax_loop", run_jax, lambda: jax.block_until_ready(out["tokens"]), args.jax_reps)
    print(json.dumps(write_results()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
