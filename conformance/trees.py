"""Parameter trees as the harness passes them: nested ``dict``s with ``str`` keys and array leaves.

Leaves are visited in ``jax.tree.flatten`` order, which SORTS dict keys (``"10"`` before
``"2"``, ``"bias"`` before ``"weight"``), whatever order the dict was built in. Paths are the
keys joined with ``/`` (``"0/weight"``).
"""
from __future__ import annotations

from typing import Callable, Iterator


def _check(tree, where: str = "tree") -> None:
    if not isinstance(tree, dict):
        return
    for k in tree:
        if not isinstance(k, str):
            raise TypeError(f"{where}: dict keys must be str, got {k!r} ({type(k).__name__})")


def items(tree, sort_keys: bool = True, prefix: str = "") -> Iterator[tuple[str, object]]:
    """``(path, leaf)`` pairs; ``sort_keys=False`` gives insertion (registration) order instead."""
    if not isinstance(tree, dict):
        yield prefix, tree
        return
    _check(tree, prefix or "tree")
    keys = sorted(tree) if sort_keys else list(tree)
    for k in keys:
        yield from items(tree[k], sort_keys, f"{prefix}/{k}" if prefix else k)


def paths(tree, sort_keys: bool = True) -> list[str]:
    return [p for p, _ in items(tree, sort_keys)]


def leaves(tree, sort_keys: bool = True) -> list:
    return [leaf for _, leaf in items(tree, sort_keys)]


def map_leaves(fn: Callable, tree, *rest):
    """``fn(leaf, *matching leaves of rest)`` over the tree, keeping the dict structure and order."""
    if not isinstance(tree, dict):
        return fn(tree, *rest)
    out = {}
    for k in tree:
        for other in rest:
            if not isinstance(other, dict) or k not in other:
                raise ValueError(f"trees differ in structure at key {k!r}")
        out[k] = map_leaves(fn, tree[k], *(other[k] for other in rest))
    return out


def from_paths(flat: dict[str, object], template) -> dict:
    """Rebuild a tree shaped like ``template`` from ``{path: leaf}``."""
    return map_leaves_with_path(lambda path, _: flat[path], template)


def map_leaves_with_path(fn: Callable, tree, prefix: str = ""):
    """``fn(path, leaf)`` over the tree."""
    if not isinstance(tree, dict):
        return fn(prefix, tree)
    return {k: map_leaves_with_path(fn, v, f"{prefix}/{k}" if prefix else k) for k, v in tree.items()}
