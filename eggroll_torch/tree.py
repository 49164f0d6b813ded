"""Pytrees of torch tensors, laid out exactly as ``jax.tree`` lays them out.

Containers are ``dict`` (children in sorted key order, as JAX sorts them), ``OrderedDict`` and
``defaultdict`` (insertion and sorted order respectively, as in JAX), ``list``, ``tuple`` and
``NamedTuple`` (field order). ``None`` is a container with no children, so it holds no leaf.
Everything else, tensors and Python scalars included, is a leaf.

The leaf order of :func:`flatten` is the order ``jax.tree.flatten`` gives the same nesting,
which is what makes one-key-per-leaf derivations (``simple_es_tree_key``) match JAX.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any, Callable

import torch

__all__ = [
    "PyTreeDef",
    "flatten",
    "flatten_up_to",
    "leaves",
    "map",
    "structure",
    "unflatten",
]

_LEAF = "leaf"


def _is_namedtuple(node) -> bool:
    return isinstance(node, tuple) and hasattr(type(node), "_fields")


def _node_kind(node):
    """(kind, metadata, children) of a container, or None for a leaf."""
    if node is None:
        return "none", None, ()
    if isinstance(node, collections.OrderedDict):
        keys = tuple(node.keys())
        return "ordereddict", keys, tuple(node[k] for k in keys)
    if isinstance(node, collections.defaultdict):
        keys = tuple(sorted(node.keys()))
        return "defaultdict", (node.default_factory, keys), tuple(node[k] for k in keys)
    if isinstance(node, dict):
        keys = tuple(sorted(node.keys()))
        return "dict", keys, tuple(node[k] for k in keys)
    if _is_namedtuple(node):
        return "namedtuple", type(node), tuple(node)
    if isinstance(node, tuple):
        return "tuple", len(node), tuple(node)
    if isinstance(node, list):
        return "list", len(node), tuple(node)
    return None


@dataclass(frozen=True)
class PyTreeDef:
    """The shape of a pytree without its leaves: a node kind, its metadata and its children.

    Two trees have equal ``PyTreeDef`` when they nest the same containers with the same keys,
    which is the condition :func:`map` needs between its trees.
    """

    kind: str
    meta: Any
    children: tuple["PyTreeDef", ...]

    @property
    def num_leaves(self) -> int:
        if self.kind == _LEAF:
            return 1
        return sum(child.num_leaves for child in self.children)

    def __repr__(self) -> str:
        if self.kind == _LEAF:
            return "*"
        if self.kind == "none":
            return "None"
        inner = ", ".join(repr(c) for c in self.children)
        if self.kind in ("dict", "ordereddict", "defaultdict"):
            keys = self.meta[1] if self.kind == "defaultdict" else self.meta
            inner = ", ".join(f"{k!r}: {c!r}" for k, c in zip(keys, self.children))
            return "{" + inner + "}"
        if self.kind == "list":
            return "[" + inner + "]"
        if self.kind == "namedtuple":
            return f"{self.meta.__name__}({inner})"
        return "(" + inner + ("," if len(self.children) == 1 else "") + ")"


_LEAF_DEF = PyTreeDef(_LEAF, None, ())


def _build(kind: str, meta, children: list):
    if kind == "none":
        return None
    if kind == "dict":
        return dict(zip(meta, children))
    if kind == "ordereddict":
        return collections.OrderedDict(zip(meta, children))
    if kind == "defaultdict":
        factory, keys = meta
        return collections.defaultdict(factory, zip(keys, children))
    if kind == "namedtuple":
        return meta(*children)
    if kind == "tuple":
        return tuple(children)
    return list(children)


def _flatten_into(node, out: list, is_leaf) -> PyTreeDef:
    if is_leaf is not None and is_leaf(node):
        out.append(node)
        return _LEAF_DEF
    described = _node_kind(node)
    if described is None:
        out.append(node)
        return _LEAF_DEF
    kind, meta, children = described
    return PyTreeDef(kind, meta, tuple(_flatten_into(c, out, is_leaf) for c in children))


def flatten(tree, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list, PyTreeDef]:
    """Leaves of ``tree`` in ``jax.tree.flatten`` order, and its :class:`PyTreeDef`.

    ``is_leaf(node) -> bool`` marks extra nodes as leaves (e.g. ``lambda x: x is None``).
    """
    out: list = []
    treedef = _flatten_into(tree, out, is_leaf)
    return out, treedef


def leaves(tree, is_leaf: Callable[[Any], bool] | None = None) -> list:
    """The leaves of ``tree`` in flatten order."""
    return flatten(tree, is_leaf)[0]


def structure(tree, is_leaf: Callable[[Any], bool] | None = None) -> PyTreeDef:
    """The :class:`PyTreeDef` of ``tree``."""
    return flatten(tree, is_leaf)[1]


def unflatten(treedef: PyTreeDef, leaves_) -> Any:
    """Rebuild a tree of shape ``treedef`` from ``leaves_`` (an iterable, consumed in order)."""
    items = list(leaves_)
    if len(items) != treedef.num_leaves:
        raise ValueError(
            f"leaves: the tree structure {treedef!r} takes {treedef.num_leaves} leaves, "
            f"got {len(items)}; pass exactly one value per leaf of the structure"
        )
    iterator = iter(items)

    def build(node: PyTreeDef):
        if node.kind == _LEAF:
            return next(iterator)
        return _build(node.kind, node.meta, [build(c) for c in node.children])

    return build(treedef)


def flatten_up_to(treedef: PyTreeDef, tree, name: str = "tree") -> list:
    """Cut ``tree`` at the leaves of ``treedef``: one whole subtree of ``tree`` per leaf.

    This is how ``jax.tree.map`` reads its extra trees: they must share ``treedef``'s containers
    down to its leaves and may hold any subtree (``()``, a tuple of axes, ...) below them.
    """
    out: list = []

    def walk(node: PyTreeDef, sub, path: str):
        if node.kind == _LEAF:
            out.append(sub)
            return
        described = _node_kind(sub)
        if described is None or described[0] != node.kind or described[1] != node.meta:
            got = "a leaf" if described is None else repr(structure(sub))
            raise ValueError(
                f"{name}: at {path or 'the root'} expected the structure {node!r} but found {got}; "
                "every tree passed together must nest the same containers with the same keys"
            )
        keys = _child_labels(node)
        for label, child_def, child in zip(keys, node.children, described[2]):
            walk(child_def, child, f"{path}[{label!r}]")

    walk(treedef, tree, "")
    return out


def _child_labels(node: PyTreeDef):
    if node.kind in ("dict", "ordereddict"):
        return node.meta
    if node.kind == "defaultdict":
        return node.meta[1]
    return range(len(node.children))


def _plain(tree: dict, rest: tuple) -> bool:
    """Whether ``tree`` nests only plain dicts down to tensors and every tree of ``rest`` has
    exactly its keys at each of those dicts (below a tensor, ``rest`` may hold anything)."""
    for other in rest:
        if type(other) is not dict or other.keys() != tree.keys():
            return False
    for k, child in tree.items():
        if type(child) is dict:
            if not _plain(child, tuple(other[k] for other in rest)):
                return False
        elif not isinstance(child, torch.Tensor):
            return False
    return True


def _map_plain(fn: Callable, tree: dict, rest: tuple) -> dict:
    out = {}
    for k in sorted(tree):
        child = tree[k]
        children = tuple(other[k] for other in rest)
        out[k] = _map_plain(fn, child, children) if type(child) is dict else fn(child, *children)
    return out


def map(fn: Callable, tree, *rest, is_leaf: Callable[[Any], bool] | None = None):  # noqa: A001 (jax.tree.map's name)
    """``jax.tree.map``: apply ``fn`` leaf by leaf; ``rest`` trees must have ``tree`` as a prefix."""
    if is_leaf is None and type(tree) is dict and _plain(tree, rest):
        # Nested plain dicts of tensors, the shape of every parameter tree a trainer holds:
        # mapped without building a PyTreeDef, in the same sorted-key order, so ``fn`` sees the
        # leaves in flatten order. Anything else (and every mismatch, for its error) below.
        return _map_plain(fn, tree, rest)
    flat, treedef = flatten(tree, is_leaf)
    others = [flatten_up_to(treedef, r, name=f"tree {i + 2} of map") for i, r in enumerate(rest)]
    return unflatten(treedef, [fn(*args) for args in zip(flat, *others)])
