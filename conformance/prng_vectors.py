"""Golden vectors of ``jax.random`` itself, recorded on XLA:CPU, for ``eggroll_torch.random``.

``python -m conformance vectors`` records them beside the checks' vectors, in
``conformance/vectors/prng/random_cpu_jax<version>.npz``: for every case its input key words
(``<case>.keys``) and JAX's output (``<case>.out``; floats stored as their raw bits), plus a
``header`` entry (JSON) naming the jax/jaxlib/numpy versions, the machine and every case's
parameters, so that a machine without this JAX (a CUDA box) can check eggroll_torch against it.
The file name carries the JAX version: another JAX writes a new file beside the old one, and an
existing file changes only after its differences are printed.
"""
from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import numpy as np

DIRECTORY = Path(__file__).parent / "vectors" / "prng"

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


def path_for(jax_version: str, directory: Path = DIRECTORY) -> Path:
    """Where the vectors of ``jax_version`` live."""
    return directory / f"random_cpu_jax{jax_version.replace('.', '')}.npz"


def record(directory: Path = DIRECTORY, dry_run: bool = False) -> tuple[bool, list[str]]:
    """Record every case with this host's ``jax.random`` into ``directory``.

    Returns ``(changed, lines)``: whether the file is new or differs from the stored one, and the
    lines that say so (the arrays that changed). Nothing is written when ``dry_run`` or when
    nothing changed. Raises ``RuntimeError`` when JAX's default backend is not the CPU, whose
    numbers these vectors are.
    """
    import jax

    if jax.default_backend() != "cpu":
        raise RuntimeError(f"jax's backend is {jax.default_backend()!r}; the PRNG vectors are XLA:CPU's "
                           "(set JAX_PLATFORMS=cpu)")
    path = path_for(jax.__version__, Path(directory))
    all_cases = cases()
    arrays = {}
    for case in all_cases:
        keys, out = run_case(case)
        if keys is not None:
            arrays[f"{case['name']}.keys"] = keys
        arrays[f"{case['name']}.out"] = out
    if path.exists():
        old = np.load(path)
        changed = sorted(k for k in set(arrays) | set(old.files) - {"header"}
                         if k not in old.files or k not in arrays or not np.array_equal(old[k], arrays[k]))
        if not changed:
            return False, [f"prng: {path.name} unchanged ({len(all_cases)} cases)"]
        lines = [f"prng: {path.name}: {len(changed)} arrays differ: {', '.join(changed)}"]
    else:
        lines = [f"prng: {path.name} is new ({len(all_cases)} cases)"]
    if not dry_run:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, header=json.dumps(header(all_cases)), **arrays)
    return True, lines
