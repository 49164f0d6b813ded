"""Population noise generation: eggroll_torch.random.normal against jax.random.normal and torch.randn.

    python -m benchmarks.bench_random --device cpu [--scale 0.125] [--backend compiled]

The workload is one EGGROLL layer's factors for a whole population: keys ``(N, 2)`` ->
``normal(keys, (a + b, r))`` of shape ``(N, a + b, r)`` float32, by default N = 4096 threads and
(2048 + 2048, 16), i.e. 2**28 values (1 GiB). On CUDA both variants are timed. JAX runs
``jit(vmap(normal))`` on the same keys in the same process (on the GPU when ``--device cuda`` and
JAX has one); ``torch.randn`` of the same
shape is the no-parity floor; the generators are timed in turns (``measure.time_in_turns``).
``--scale`` shrinks N for slow hosts. The first eggroll call
(table build, kernel compilation) is reported separately from the steady-state median. The
fraction of values bit-identical to JAX's is reported (1.0 expected against XLA:CPU; against
XLA:GPU the ``"gpu"`` variant is used, whose tail entries are known to differ, see gpu_variant).
"""
from __future__ import annotations

import argparse
import os
import time


def main(device: str, population: int = 4096, rows: int = 4096, rank: int = 16, repeats: int = 7,
         backend: str = "auto", check: bool = True, threads: int | None = None) -> dict:
    """Time the three generators on ``device``; print a table and return the numbers (seconds).

    ``threads`` pins torch's and XLA:CPU's thread counts (1 disables XLA's Eigen pool); it must be
    given before JAX is first imported in the process to affect JAX.
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda'; got {device!r}")
    if repeats < 1:
        raise ValueError(f"repeats must be a positive int; got {repeats!r}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be a positive int or None; got {threads!r}")
    if device == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if threads == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                                   " intra_op_parallelism_threads=1").strip()
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    import eggroll_torch.random as jr

    from .measure import time_in_turns

    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA device")
    if threads is not None:
        torch.set_num_threads(threads)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    jr.set_backend(backend)
    # The bits are compared with JAX on its own backend (XLA:GPU's float32 normals differ from
    # XLA:CPU's): that variant is the headline; on CUDA the other one is timed too.
    variant = "gpu" if jax.default_backend() == "gpu" else "cpu"
    variants = (variant, "cpu") if variant == "gpu" else (variant,)
    shape = (rows, rank)
    jax_keys = jax.random.split(jax.random.key(0), population)
    keys = jr.wrap_key_data(np.asarray(jax.random.key_data(jax_keys)), device=device)

    first_call = {}
    for name in variants:
        start = time.perf_counter()
        jr.normal(keys, shape, variant=name)
        sync()
        first_call[name] = time.perf_counter() - start
    ours = jr.normal(keys, shape, variant=variant)

    jax_draw = jax.jit(jax.vmap(lambda k: jax.random.normal(k, shape, jnp.float32)))
    reference = jax_draw(jax_keys).block_until_ready()

    def synced(fn):
        def call():
            fn()
            sync()
        return call

    generators = {name: synced(lambda name=name: jr.normal(keys, shape, variant=name)) for name in variants}
    generators["jax"] = lambda: jax_draw(jax_keys).block_until_ready()
    generators["randn"] = synced(lambda: torch.randn((population,) + shape, device=device))
    timed = {name: result["time_s"] for name, result in time_in_turns(generators, rounds=repeats).items()}
    ours_s, jax_s, randn_s = timed[variant], timed["jax"], timed["randn"]

    identical = None
    if check:
        same = ours.cpu().numpy().view(np.uint32) == np.asarray(reference).view(np.uint32)
        identical = float(same.mean())
    values = population * rows * rank
    result = {
        "device": device,
        "torch_device_name": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "jax_backend": jax.default_backend(),
        "backend": backend,
        "population": population,
        "shape": list(shape),
        "values": values,
        "threads": torch.get_num_threads(),
        "eggroll_first_call_s": first_call[variant],
        "eggroll_s": ours_s,
        "jax_s": jax_s,
        "randn_s": randn_s,
        "speedup_vs_jax": jax_s / ours_s,
        "slowdown_vs_randn": ours_s / randn_s,
        "variant": variant,
        "fraction_bit_identical_to_jax": identical,
        "per_variant": {name: {"eggroll_s": timed[name], "speedup_vs_jax": jax_s / timed[name],
                               "slowdown_vs_randn": timed[name] / randn_s} for name in variants},
    }
    print(f"normal {population} x {shape} float32 = {values / 2**20:.0f} Mi values on {device} "
          f"(torch threads {result['threads']}, backend {backend}, jax on {result['jax_backend']})")
    print(f"  {'generator':<40}{'median s':>10}{'ns/value':>10}")
    rows_out = [(f"eggroll_torch.random.normal ({name})", timed[name]) for name in variants]
    for label, secs in (*rows_out, ("jax.random.normal (jit+vmap)", jax_s), ("torch.randn", randn_s)):
        print(f"  {label:<40}{secs:>10.4f}{secs / values * 1e9:>10.3f}")
    print(f"  first eggroll call (table/compile): {first_call[variant]:.2f} s")
    for name in variants:
        print(f"  {name} variant: speed vs JAX {jax_s / timed[name]:.2f}x   time vs torch.randn "
              f"{timed[name] / randn_s:.2f}x")
    print(f"  fraction bit-identical to JAX ({variant} variant): {identical}")
    return result


def _cli(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_random", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the 4096-member population")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (each generator once per round)")
    parser.add_argument("--backend", choices=("auto", "eager", "compiled", "kernel"), default="auto")
    parser.add_argument("--no-check", action="store_true", help="skip the bit comparison with JAX")
    parser.add_argument("--threads", type=int, help="torch and XLA:CPU threads (default: their own)")
    args = parser.parse_args(argv)
    if not 0 < args.scale <= 1:
        parser.error(f"--scale must be in (0, 1]; got {args.scale}")
    return main(args.device, population=max(1, round(4096 * args.scale)), repeats=args.repeats,
                backend=args.backend, check=not args.no_check, threads=args.threads)


if __name__ == "__main__":
    _cli()
