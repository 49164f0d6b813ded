"""Record golden vectors of jax.random on this host's XLA:CPU for eggroll_torch.random.

    python tests/random/make_vectors.py [--force]

Writes ``tests/random/vectors/random_cpu_jax<version>.npz``: for every case its input key words
(``<case>.keys``) and JAX's output (``<case>.out``; floats stored as their raw bits), plus a
``header`` entry (JSON) naming the jax/jaxlib/numpy versions, the machine and every case's
parameters, so that a machine without this JAX (a CUDA box) can check eggroll_torch against it.
An existing file is never overwritten unless ``--force`` is given, and then the cases whose values
changed are listed.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

VECTORS = Path(__file__).parent / "vectors"

SEEDS = [0, 1, 42, -1, 2**31 - 1, 2**31, -2**31, 2**32 - 1, 2**32, 2**32 + 5, 2**40 + 3, -2**40 - 7,
         2**63 - 1, -2**63]
FOLD_DATA = [0, 1, 7, 255, 65535, 2**31 - 1, 2**31, 2**32 - 1, 123456789, 3000000000]
FLOATS = ["float32", "float16", "bfloat16", "float64"]


def cases():
    """Every recorded case as a dict of parameters; ``keys`` is how its input keys are made."""
    out = []
    for x64 in (False, True):
        out.append(dict(name=f"key_x64_{x64}", fn="key", x64=x64, seeds=SEEDS))
    out.append(dict(name="fold_in_chain", fn="fold_in_chain", seed=0, data=FOLD_DATA))
    out.append(dict(name="fold_in_threads", fn="fold_in", seed=3, epoch=5,
                    threads=[0, 1, 2, 1000, 2**20 + 1, 2**31 - 2, 2**31 - 1]))
    for part in (True, False):
        out.append(dict(name=f"split_p{int(part)}", fn="split", seed=42, num=[5], partitionable=part))
        out.append(dict(name=f"split_shape_p{int(part)}", fn="split", seed=43, num=[2, 3], partitionable=part))
        for dtype in ("uint8", "uint16", "uint32", "uint64"):
            out.append(dict(name=f"bits_{dtype}_p{int(part)}", fn="bits", seed=7, n_keys=3, shape=[3, 5],
                            dtype=dtype, partitionable=part))
        for dtype in FLOATS:
            out.append(dict(name=f"normal_{dtype}_p{int(part)}", fn="normal", seed=11, n_keys=4, shape=[33],
                            dtype=dtype, partitionable=part))
            out.append(dict(name=f"uniform_{dtype}_p{int(part)}", fn="uniform", seed=13, n_keys=3, shape=[17],
                            dtype=dtype, partitionable=part, minval=-0.3, maxval=1.7))
    out.append(dict(name="normal_population_float32", fn="normal", seed=21, n_keys=64, shape=[24, 4],
                    dtype="float32", partitionable=True, thread_keys=True))
    return out


def _keys_for(case):
    import jax

    base = jax.random.key(case["seed"])
    if case.get("thread_keys"):
        # One member key per thread id, the way EGGROLL derives them: fold_in(fold_in(k, epoch), tid).
        tids = np.arange(case["n_keys"], dtype=np.uint32) * 2654435761 % 2**31
        return jax.vmap(lambda t: jax.random.fold_in(jax.random.fold_in(base, 1), t))(tids)
    if "n_keys" in case:
        return jax.random.split(base, case["n_keys"])
    return base


def run_case(case):
    """(input key words or None, output array) of one case, computed with jax.random."""
    import jax
    import jax.numpy as jnp

    with jax.threefry_partitionable(case.get("partitionable", True)), jax.enable_x64(
            case.get("x64", False) or case.get("dtype") in ("float64", "uint64")):
        fn = case["fn"]
        if fn == "key":
            return None, np.stack([np.asarray(jax.random.key_data(jax.random.key(s))) for s in case["seeds"]])
        if fn == "fold_in_chain":
            key, chain = jax.random.key(case["seed"]), []
            for d in case["data"]:
                key = jax.random.fold_in(key, d)
                chain.append(np.asarray(jax.random.key_data(key)))
            return None, np.stack(chain)
        if fn == "fold_in":
            key = jax.random.fold_in(jax.random.key(case["seed"]), case["epoch"])
            tids = np.asarray(case["threads"], dtype=np.uint32)
            return None, np.asarray(jax.random.key_data(jax.vmap(lambda t: jax.random.fold_in(key, t))(tids)))
        keys = _keys_for(case)
        if fn == "split":
            return np.asarray(jax.random.key_data(keys)), np.asarray(
                jax.random.key_data(jax.random.split(keys, tuple(case["num"]))))
        shape = tuple(case["shape"])
        dtype = jnp.dtype(case["dtype"])
        if fn == "bits":
            out = jax.vmap(lambda k: jax.random.bits(k, shape, dtype))(keys)
        elif fn == "normal":
            out = jax.vmap(lambda k: jax.random.normal(k, shape, dtype))(keys)
        else:
            out = jax.vmap(lambda k: jax.random.uniform(k, shape, dtype, case["minval"], case["maxval"]))(keys)
        out = np.asarray(out)
        return np.asarray(jax.random.key_data(keys)), out.view(f"u{out.dtype.itemsize}")


def header(all_cases):
    import jax
    import jaxlib

    return {
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": np.__version__,
        "platform": jax.default_backend(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "note": "floats stored as raw bits (uint of the same width); keys are uint32 words",
        "cases": all_cases,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="overwrite an existing vector file")
    args = parser.parse_args(argv)
    import jax

    if jax.default_backend() != "cpu":
        print(f"refusing to record: jax backend is {jax.default_backend()!r}, these vectors are XLA:CPU's")
        return 2
    path = VECTORS / f"random_cpu_jax{jax.__version__.replace('.', '')}.npz"
    all_cases = cases()
    arrays = {}
    for case in all_cases:
        keys, out = run_case(case)
        if keys is not None:
            arrays[f"{case['name']}.keys"] = keys
        arrays[f"{case['name']}.out"] = out
    if path.exists():
        if not args.force:
            print(f"{path} exists; not overwriting it (pass --force to replace it)")
            return 1
        old = np.load(path)
        changed = [k for k in arrays if k not in old or not np.array_equal(old[k], arrays[k])]
        print(f"replacing {path}; changed arrays: {changed or 'none'}")
    VECTORS.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, header=json.dumps(header(all_cases)), **arrays)
    print(f"wrote {path} ({path.stat().st_size} bytes, {len(all_cases)} cases)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
