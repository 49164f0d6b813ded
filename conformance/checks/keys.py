"""Per-parameter keys: ``simple_es_tree_key`` splits one key over the leaves of the params tree."""
from __future__ import annotations

import numpy as np

from .. import inputs, trees
from ..adapters import base as caps
from ._common import flat
from .base import Case, Check, register

COMPONENT = "Key derivation"


def _keys_case(case_id: str, shapes: dict, scan: dict) -> Case:
    def build(spec):
        return {k: build(v) if isinstance(v, dict) else v for k, v in spec.items()}

    params = trees.map_leaves(lambda s: np.zeros(s, np.float32), build(shapes))
    scan_map = trees.map_leaves(tuple, build(scan))
    return Case(case_id, {"params": params, "scan_map": scan_map, "key": inputs.key(case_id)},
                frozenset({caps.TREE_KEYS}))


class _TreeKeys(Check):
    requires = frozenset({caps.TREE_KEYS})
    rng = True

    def compute(self, adapter, case, noise=None):
        return flat("keys", adapter.tree_keys(case["params"], case["key"], case["scan_map"]))


@register
class TreeOrder(_TreeKeys):
    id = "keys.tree_order"
    component = COMPONENT
    summary = ("split(base_key, n_leaves) assigned in jax.tree.flatten order: "
               "dict keys SORTED ('10' < '2', 'bias' < 'weight')")

    def cases(self, profile):
        # Built in registration order (weight before bias, like torch.nn.Linear): sorting matters.
        mlp = {str(i): {"weight": (4, 3), "bias": (4,)} for i in range(12)}
        mlp_scan = {str(i): {"weight": (), "bias": ()} for i in range(12)}
        nested = {"z": {"b": (2,), "a": (3,)}, "a": (2, 2), "m": {"y": (1,)}}
        nested_scan = {"z": {"b": (), "a": ()}, "a": (), "m": {"y": ()}}
        return [_keys_case("mlp-12-layers", mlp, mlp_scan), _keys_case("nested", nested, nested_scan)]


@register
class ScanSplit(_TreeKeys):
    id = "keys.scan_split"
    component = COMPONENT
    summary = "a leaf with scan axes gets its key split again, recursively, once per index"

    def cases(self, profile):
        shapes = {"stack": (3, 4, 5), "grid": (2, 3, 4, 4), "plain": (4, 4)}
        scan = {"stack": (0,), "grid": (0, 1), "plain": ()}
        return [_keys_case("stacked", shapes, scan)]
