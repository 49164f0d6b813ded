"""Module parameters as the nested dict the functional layer uses, and their ES keys.

A parameter path ``"0.weight"`` becomes ``params["0"]["weight"]``. Keys come from
``simple_es_tree_key`` on that nested dict, which splits the ES key once per leaf in
``jax.tree.flatten`` order: dict keys sorted as strings at every level (``"10" < "2"``), not
the order modules were registered in, and not a sort of the full dotted path (``"a-x.w"`` sorts
before ``"a.w"`` as a string, but after it as nested keys ``"a" < "a-x"``).

So an ``nn.Module`` whose parameter paths spell the same nested dict as a functional model's
``params`` (e.g. ``0.weight, 0.bias, 1.weight, ...`` for the MLP) gets the same key per parameter,
hence the same noise and the same update, from the same ES key.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import torch

from eggroll_torch.models.common import simple_es_tree_key

V = TypeVar("V")


def nest(flat: Mapping[str, V]) -> dict:
    """``{"a.b": v}`` -> ``{"a": {"b": v}}``; the inverse of :func:`flatten_paths`."""
    tree: dict = {}
    for path, value in flat.items():
        *parents, last = path.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return tree


def flatten_paths(tree: Mapping, prefix: str = "") -> dict[str, object]:
    """``{"a": {"b": v}}`` -> ``{"a.b": v}``: every non-dict value is a leaf."""
    flat: dict[str, object] = {}
    for name, value in tree.items():
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(value, Mapping):
            flat.update(flatten_paths(value, path))
        else:
            flat[path] = value
    return flat


def assign_keys(params: Mapping[str, torch.Tensor], es_key: torch.Tensor) -> dict[str, torch.Tensor]:
    """One ES key per parameter path: ``simple_es_tree_key(nest(params), es_key, scan_map)``.

    ``params`` maps paths to tensors; every leaf's ``scan_map`` entry is ``()`` (nn modules hold
    no scan-stacked layers). Returns ``{path: uint32 key of shape (2,)}``.
    """
    tree = nest(params)
    scan_map = nest({path: () for path in params})
    return flatten_paths(simple_es_tree_key(tree, es_key, scan_map))
