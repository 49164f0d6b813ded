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
    """``{"a.b": v}`` -> ``{"a": {"b": v}}``; the inverse of :func:`flatten_paths`.

    Args:
        flat (Mapping[str, V]): dotted paths (as ``nn.Module.named_parameters`` spells them) to
            values of any type. No path may be a proper prefix of another (``"a"`` with
            ``"a.b"``), since a leaf cannot also be a dict.

    Returns:
        dict: nested dicts with ``str`` keys, one level per path component, the values as
        leaves (the same objects, not copies), inserted in ``flat``'s order.
    """
    tree: dict = {}
    for path, value in flat.items():
        *parents, last = path.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return tree


def flatten_paths(tree: Mapping, prefix: str = "") -> dict[str, object]:
    """``{"a": {"b": v}}`` -> ``{"a.b": v}``: every non-``Mapping`` value is a leaf.

    Args:
        tree (Mapping): nested mappings with ``str`` keys (e.g. a functional ``params`` tree or
            the key tree of ``simple_es_tree_key``).
        prefix (str): path prepended, with a ``"."``, to every path. Default ``""``: none.

    Returns:
        dict[str, object]: ``{dotted path: leaf}`` in depth-first order of ``tree``'s own key
        order (not sorted); the leaves are the same objects, not copies.
    """
    flat: dict[str, object] = {}
    for name, value in tree.items():
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(value, Mapping):
            flat.update(flatten_paths(value, path))
        else:
            flat[path] = value
    return flat


def assign_keys(params: Mapping[str, torch.Tensor], es_key: torch.Tensor,
                scan_map: Mapping[str, tuple] | None = None) -> dict[str, torch.Tensor]:
    """One ES key per parameter path: ``simple_es_tree_key(nest(params), es_key, scan_map)``.

    With no ``scan_map`` every leaf's entry is ``()`` (nn modules hold no scan-stacked layers),
    so each parameter gets one key of the ``split(es_key, len(params))`` in ``jax.tree.flatten``
    order of ``nest(params)`` (see the module docstring); only the paths and the leaf count
    matter, not the tensors' values. A leaf stacked along axes ``(0,)`` gets that key split once
    per layer, as upstream's layer-stacked models do.

    Args:
        params (Mapping[str, torch.Tensor]): ``{dotted parameter path: tensor}``, e.g.
            ``dict(module.named_parameters())``.
        es_key (torch.Tensor): the ES key, a ``torch.uint32`` tensor of shape ``(2,)``.
        scan_map (Mapping[str, tuple] | None): ``{path: stacked axes}`` for every path of
            ``params`` (a functional model's ``scan_map``, flattened). Default ``None``: none stacked.

    Returns:
        dict[str, torch.Tensor]: ``{path: torch.uint32 keys}`` for every path of ``params``, on
        ``es_key``'s device: shape ``(2,)``, or ``(*stacked sizes, 2)`` for a stacked leaf.

    Raises:
        TypeError: ``es_key`` is not a ``torch.uint32`` tensor with a last axis of length 2.
        ValueError: ``es_key`` is a batch of keys rather than one key of shape ``(2,)``.
    """
    tree = nest(params)
    scan_map = nest({path: () if scan_map is None else tuple(scan_map[path]) for path in params})
    return flatten_paths(simple_es_tree_key(tree, es_key, scan_map))
