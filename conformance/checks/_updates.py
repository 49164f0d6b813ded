"""Base of every check that runs ``do_updates``: case building, injected noise, output flattening.

Update cases start from zero parameters with plain SGD at ``lr = 1`` unless they say otherwise,
so the new parameters ARE ``-grad = sqrt(N) * estimate`` and any error in the estimate shows at
full size instead of hiding under the parameters' magnitude.
"""
from __future__ import annotations

import numpy as np

from .. import inputs, trees
from ..adapters import base as caps
from ..spec import NoiserConfig, Population
from ._common import flat, leaf_noise, reference_noise, requires
from .base import Case, Check


def make_tree(name: str, leaves: dict, dtype: str = "float32", zero: bool = True):
    """``params, es_map, keys`` trees from ``{path: (shape, es_class)}`` (paths use ``/``).

    Dict insertion order follows ``leaves``; keys are independent words per leaf.
    """
    params, es_map, keys = {}, {}, {}
    for path, (shape, cls) in leaves.items():
        *outer, leaf = path.split("/")
        p, e, k = params, es_map, keys
        for part in outer:
            p, e, k = p.setdefault(part, {}), e.setdefault(part, {}), k.setdefault(part, {})
        value = np.zeros(shape, np.float32) if zero else inputs.normal(f"{name}:{path}", shape)
        p[leaf] = _cast(value, dtype)
        e[leaf] = int(cls)
        k[leaf] = inputs.key(f"{name}:{path}")
    return params, es_map, keys


def _cast(value: np.ndarray, dtype: str) -> np.ndarray:
    if dtype in ("float32", "float16"):
        return value.astype(dtype)
    try:
        import ml_dtypes
    except ImportError as e:
        raise caps.Unsupported(f"{dtype} inputs need ml_dtypes (installed with jaxlib)") from e
    return value.astype(getattr(ml_dtypes, dtype))


def update_case(case_id: str, config: NoiserConfig, leaves: dict, population: Population,
                fitness_kind: str = "normal", dtype: str = "float32", zero: bool = True,
                extra=()) -> Case:
    """A ``do_updates`` case; fitnesses are raw scores of ``fitness_kind`` already shaped by
    the global z-score (so the update checks do not depend on ``convert_fitnesses``)."""
    params, es_map, keys = make_tree(case_id, leaves, dtype, zero)
    shaped = inputs.zscore(inputs.fitness(fitness_kind, population.size, case_id)).astype(np.float32)
    return Case(case_id, {"config": config, "params": params, "es_map": es_map, "keys": keys,
                          "fitnesses": shaped, "population": population},
                requires(config, dtype, extra={caps.UPDATES, *extra}))


class UpdateCheck(Check):
    """Runs ``do_updates`` on the case; a port without JAX's RNG gets the reference's noise."""

    requires = frozenset({caps.UPDATES})
    rng = True
    injectable = True
    default_kind = "reduction"

    def compute(self, adapter, case, noise=None):
        injected = None if noise is None else leaf_noise(noise, case["params"])
        new = adapter.do_updates(case["config"], case["params"], case["es_map"], case["keys"],
                                 case["fitnesses"], case["population"], noise=injected)
        return flat("params", new)

    def aux(self, reference, case):
        return reference_noise(reference, case["config"], case["params"], case["es_map"], case["keys"],
                               case["population"])

    @staticmethod
    def unchanged(outputs, case, es_classes) -> list[str]:
        """Leaves of the given es_map classes must come back equal to their input."""
        emap = dict(trees.items(case["es_map"]))
        bad = [p for p, v in trees.items(case["params"])
               if emap[p] in es_classes and not np.array_equal(np.asarray(outputs[f"params/{p}"], np.float64),
                                                                np.asarray(v, np.float64))]
        return [f"leaves {bad} were updated but must not be"] if bad else []
