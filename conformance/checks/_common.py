"""Helpers shared by the check modules: flattening trees into outputs, reference noise, requirements."""
from __future__ import annotations

import numpy as np

from .. import trees
from ..adapters import base as caps
from ..spec import EMB_PARAM, EXCLUDED, MM_PARAM, LeafNoise, NoiserConfig


def flat(prefix: str, tree) -> dict[str, np.ndarray]:
    """``{prefix/path: leaf}`` for every leaf of ``tree`` (jax flatten order)."""
    return {f"{prefix}/{p}": np.asarray(v) for p, v in trees.items(tree)}


def requires(config: NoiserConfig | None = None, *dtypes: str, extra=()) -> frozenset:
    """Capabilities a case needs: its noiser, its dtypes and ``extra``."""
    need = set(extra)
    if config is not None:
        need.add(caps.noiser_capability(config.noiser))
    need.update(caps.dtype_capability(d) for d in dtypes)
    return frozenset(need)


def reference_noise(reference, config: NoiserConfig, params: dict, es_map: dict, keys: dict,
                    population) -> dict[str, np.ndarray]:
    """The reference's noise of every leaf, flattened for a golden vector.

    Matrix leaves of low-rank noisers give ``noise/<path>/A`` and ``/B``; other perturbed
    leaves ``noise/<path>/full``; EMB_PARAM / EXCLUDED leaves nothing.
    """
    out = {}
    emap = dict(trees.items(es_map))
    kmap = dict(trees.items(keys))
    for path, param in trees.items(params):
        cls = int(emap[path])
        if cls in (EMB_PARAM, EXCLUDED):
            continue
        shape, dtype = tuple(param.shape), str(param.dtype)
        if cls == MM_PARAM and config.noiser not in ("open_es",):
            a, b = reference.lora_factors(config, kmap[path], shape, dtype, population)
            out[f"noise/{path}/A"], out[f"noise/{path}/B"] = a, b
        else:
            out[f"noise/{path}/full"] = reference.full_noise(config, kmap[path], shape, dtype, population)
    return out


def leaf_noise(aux: dict[str, np.ndarray], params: dict) -> dict[str, LeafNoise]:
    """Inverse of :func:`reference_noise`: ``{path: LeafNoise}`` for ``do_updates(noise=...)``."""
    out = {}
    for path in trees.paths(params):
        if f"noise/{path}/A" in aux:
            out[path] = LeafNoise("lora", (aux[f"noise/{path}/A"], aux[f"noise/{path}/B"]))
        elif f"noise/{path}/full" in aux:
            out[path] = LeafNoise("full", (aux[f"noise/{path}/full"],))
        else:
            out[path] = LeafNoise("none")
    return out


def pair_index(thread_ids: np.ndarray) -> dict[int, tuple[int, int]]:
    """``{i: (member of thread 2i, member of thread 2i+1)}`` for every complete antithetic pair."""
    where = {int(t): n for n, t in enumerate(thread_ids)}
    return {t // 2: (where[t], where[t + 1]) for t in where if t % 2 == 0 and t + 1 in where}


def law(ok: bool, message: str) -> list[str]:
    return [] if ok else [message]
