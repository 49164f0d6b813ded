"""tree.*: eggroll_torch.tree flattens, rebuilds and maps exactly as jax.tree does."""
from __future__ import annotations

import collections
from typing import NamedTuple

import jax
import pytest

from eggroll_torch import tree


class Pair(NamedTuple):
    first: object
    second: object


def _nested():
    return {
        "b": [1, None, (2, 3)],
        "a": {"z": 4, "y": Pair(5, None)},
        "c": collections.OrderedDict([("q", 6), ("p", 7)]),
        "d": collections.defaultdict(list, {"k": 8, "j": 9}),
        "e": (),
        "10": 10,
        "2": 11,
    }


def test_tree_flatten_order_matches_jax():
    leaves, _ = tree.flatten(_nested())
    assert leaves == jax.tree.leaves(_nested())
    assert tree.structure(_nested()).num_leaves == jax.tree.structure(_nested()).num_leaves


def test_tree_unflatten_round_trip():
    leaves, treedef = tree.flatten(_nested())
    rebuilt = tree.unflatten(treedef, [x * 10 for x in leaves])
    assert rebuilt == jax.tree.map(lambda x: x * 10, _nested())
    assert isinstance(rebuilt["a"]["y"], Pair) and isinstance(rebuilt["c"], collections.OrderedDict)
    assert rebuilt["b"][1] is None and rebuilt["e"] == ()


def test_tree_map_prefix_trees():
    """Extra trees may hold whole subtrees (``()``, axis tuples) at the first tree's leaves."""
    params = {"w": 1, "v": 2}
    scan_map = {"w": (), "v": (0, 1)}
    assert tree.map(lambda p, s: (p, s), params, scan_map) == jax.tree.map(lambda p, s: (p, s), params, scan_map)


def test_tree_none_is_empty():
    assert tree.leaves([None, {"a": None}]) == []
    assert tree.leaves([None, 1], is_leaf=lambda x: x is None) == [None, 1]


def test_tree_structure_mismatch_raises():
    with pytest.raises(ValueError, match="structure"):
        tree.map(lambda a, b: a, {"a": 1}, {"b": 1})
    with pytest.raises(ValueError, match="leaves"):
        tree.unflatten(tree.structure({"a": 1, "b": 2}), [1])
