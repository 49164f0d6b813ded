"""Elementwise transformations on all leaves at once: a small tree of one dtype as one 1-D tensor.

For a small model an optimizer step is dozens of elementwise ops per leaf on a few hundred
numbers each, so its time is the per-op dispatch, not arithmetic. Every transformation whose
update applies the same elementwise expression to each leaf (``scale_by_adam``, ``scale``,
``add_decayed_weights``, ``trace``, ...) can instead run that expression once on the leaves
concatenated: an elementwise op computes each element from the same elements alone, whichever
tensor holds them, so the concatenated result is the per-leaf results side by side, bit for bit.

Such a transformation carries the concatenated form as an attribute of its update function,
``update.flat(updates, state, params, layout) -> (updates, state)``, where ``updates`` and
``params`` (or None) are 1-D tensors laid out by ``layout`` (a :class:`FlatLayout`) and
``state`` is the transformation's own state, whose trees it converts with ``layout``; a state
tree that does not fit the layout raises :class:`NotFlat`, and the caller then runs the per-leaf
update instead (the flat update has changed nothing by then: transformations are functional).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

# A concatenated copy of every tree is made per step: beyond this many elements the copies cost
# more than the per-leaf dispatch they save (and would add to the peak memory of a large model).
# Also on CUDA: a GPT-style decoder's hundred leaves went flat on an H100 for 2% of a graphed
# generation's time and 16% more peak memory (in a CUDA graph a small kernel costs ~1 us).
MAX_ELEMENTS = 1 << 16


class NotFlat(Exception):
    """A tree does not fit the layout (structure, dtype, device or shape)."""


def with_flat(update: Callable, flat: Callable) -> Callable:
    """``update`` with its concatenated form ``flat`` attached (see the module docstring)."""
    update.flat = flat
    return update


def flat_form(transformation) -> Callable | None:
    """The concatenated form of ``transformation``'s update, or None."""
    return getattr(getattr(transformation, "update", None), "flat", None)


class FlatLayout:
    """Nested plain dicts of tensors (the parameter trees) as one 1-D tensor.

    Leaves are concatenated in :mod:`eggroll_torch.tree` order (keys sorted at every level).
    Built by :meth:`build`, which accepts only trees whose leaves share one dtype and device;
    layouts are kept per structure, shapes, dtype and device, since a trainer passes the same
    ones every step.
    """

    def __init__(self, structure: tuple, shapes: tuple, dtype: torch.dtype, device: torch.device):
        self._structure = structure
        self._views = []
        offset = 0
        for shape in shapes:
            self._views.append((shape, _contiguous_strides(shape), offset))
            offset += shape.numel()
        self.numel = offset
        self.dtype = dtype
        self.device = device
        self.leaves = len(shapes)
        # The tensors unflatten viewed most recently, with their views: a tree of those views
        # (the solver state of the previous step) is one of them already and needs no copy.
        self._recent: list = []

    @classmethod
    def build(cls, tree) -> tuple[FlatLayout, torch.Tensor] | None:
        """The layout of ``tree`` and its leaves concatenated, or None: not nested plain dicts of
        tensors, several dtypes or devices, a tensor that is sparse or requires grad, an empty
        tree, or more than :data:`MAX_ELEMENTS` elements."""
        if _LAST:
            # A trainer passes the same structure every step: tried first, without sorting keys.
            try:
                return _LAST[0], _LAST[0].flatten(tree)
            except NotFlat:
                pass
        leaves: list = []
        structure = _structure(tree, leaves)
        if structure is None or not leaves:
            return None
        dtype, device = leaves[0].dtype, leaves[0].device
        for leaf in leaves:
            if leaf.dtype != dtype or leaf.device != device or leaf.layout != torch.strided or leaf.requires_grad:
                return None
        key = (structure, tuple(leaf.shape for leaf in leaves), dtype, device)
        layout = _LAYOUTS.get(key)
        if layout is None:
            if sum(leaf.numel() for leaf in leaves) > MAX_ELEMENTS:
                return None
            if len(_LAYOUTS) >= _MAX_LAYOUTS:
                _LAYOUTS.clear()
            layout = _LAYOUTS[key] = cls(*key)
        _LAST[:] = [layout]
        return layout, layout._concatenate(leaves)

    def flatten(self, tree) -> torch.Tensor:
        """The leaves of ``tree`` (this layout's structure) concatenated; raises :class:`NotFlat`
        where ``tree`` does not fit."""
        leaves: list = []
        _collect(self._structure, tree, leaves)
        whole = self._whole(leaves)
        if whole is not None:
            return whole
        for leaf, (shape, _, _) in zip(leaves, self._views):
            if not isinstance(leaf, torch.Tensor) or leaf.dtype != self.dtype or leaf.device != self.device \
                    or leaf.shape != shape or leaf.layout != torch.strided or leaf.requires_grad:
                raise NotFlat
        return torch._utils._flatten_dense_tensors(leaves)

    def unflatten(self, flat: torch.Tensor) -> dict:
        """The tree of this layout's structure whose leaves are views of ``flat`` (contiguous,
        of this layout's dtype and device)."""
        start = flat.storage_offset()
        views = [flat.as_strided(shape, stride, start + offset) for shape, stride, offset in self._views]
        recent = self._recent
        recent.append((flat, views))
        if len(recent) > _RECENT:
            del recent[0]
        return _build(self._structure, iter(views))

    def _concatenate(self, leaves: list) -> torch.Tensor:
        whole = self._whole(leaves)
        return torch._utils._flatten_dense_tensors(leaves) if whole is None else whole

    def _whole(self, leaves: list) -> torch.Tensor | None:
        """The tensor whose :meth:`unflatten` views ``leaves`` are, the very tensor objects (the
        solver state of the previous step), so that it needs no copy; else None."""
        first = leaves[0]
        for whole, views in self._recent:
            if views[0] is first:
                return whole if all(leaf is view for leaf, view in zip(leaves, views)) else None
        return None


def whole_of(leaves: list) -> tuple[torch.Tensor, list[int]] | None:
    """``(whole, order)`` when ``leaves`` are, in any order, the very views that the most recently
    used layout's :meth:`FlatLayout.unflatten` made of the 1-D tensor ``whole`` (the new params of
    a flat solver step): ``leaves[order[k]]`` is the ``k``-th segment of ``whole``. Else None."""
    if not _LAST or len(leaves) != _LAST[0].leaves:
        return None
    position = {id(leaf): index for index, leaf in enumerate(leaves)}
    for whole, views in _LAST[0]._recent:
        order = [position.get(id(view)) for view in views]
        if None not in order and all(leaves[index] is view for index, view in zip(order, views)):
            return whole, order
    return None


def concatenated_pair(before: list, after: list) -> tuple[list, torch.Tensor, torch.Tensor] | None:
    """When ``after`` are a flat step's new leaves (see :func:`whole_of`) and ``before`` the
    matching old ones, of the same dtype and device: ``(before in the layout's order, those
    concatenated, after's whole)``; else None."""
    found = whole_of(after)
    if found is None:
        return None
    whole, order = found
    if not all(b.dtype == whole.dtype and b.device == whole.device for b in before):
        return None
    ordered = [before[i] for i in order]
    return ordered, torch._utils._flatten_dense_tensors(ordered), whole


# Tensors each layout keeps for :meth:`FlatLayout._whole`: the moments and params of the last
# steps.
_RECENT = 4
# A process holds a few trees' layouts; emptied if ever it grows past this (any number of
# trainers of different architectures still works, only without the reuse).
_MAX_LAYOUTS = 16
_LAYOUTS: dict = {}
_LAST: list = []


def _contiguous_strides(shape: torch.Size) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def constant(value, like: torch.Tensor) -> torch.Tensor:
    """``numerics.weak_scalar(value, like)``, a Python number's tensor kept per value, dtype and device
    (the flat updates use a dozen such constants per step). Only the updates' own arithmetic reads
    these tensors; none is returned or written."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype=like.dtype, device=like.device)
    key = (value, like.dtype, like.device)
    tensor = _CONSTANTS.get(key)
    if tensor is None:
        tensor = _CONSTANTS[key] = torch.full((), value, dtype=like.dtype, device=like.device)
    return tensor


_CONSTANTS: dict = {}


def _structure(node, leaves: list):
    """``((key, child structure or None for a leaf), ...)`` in sorted key order, the tensors
    appended to ``leaves``; None when ``node`` is not nested plain dicts of tensors."""
    if type(node) is not dict:
        return None
    out = []
    for key in sorted(node):
        child = node[key]
        if isinstance(child, torch.Tensor):
            leaves.append(child)
            out.append((key, None))
        else:
            sub = _structure(child, leaves)
            if sub is None:
                return None
            out.append((key, sub))
    return tuple(out)


def _collect(structure: tuple, node, leaves: list) -> None:
    if type(node) is not dict or len(node) != len(structure):
        raise NotFlat
    for key, child in structure:
        if key not in node:
            raise NotFlat
        if child is None:
            leaves.append(node[key])
        else:
            _collect(child, node[key], leaves)


def _build(structure: tuple, views) -> dict:
    return {key: next(views) if child is None else _build(child, views) for key, child in structure}
