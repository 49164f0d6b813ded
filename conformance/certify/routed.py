"""Comparing a port's noise with the reference's when the reference's draws are routed into it.

A port with its own RNG is checked by the harness on its noise's laws only (pairs, reuse,
shapes). An adapter that sets ``routes_reference_draws = True`` promises more: every Gaussian draw
the port makes is replaced by the reference's draw for the (leaf key, epoch, pair) the port asks
for (see :mod:`conformance.adapters.ports._reference_draws`), while everything the port does with
the draw is its own code.
Its noise outputs are then comparable value for value, so :func:`compared_view` presents the same
adapter with :data:`~conformance.adapters.base.JAX_RNG` added for those checks. Key derivation
(``tree_keys``) stays the port's own and is never compared.
"""
from __future__ import annotations

import copy

from ..adapters import base

ATTRIBUTE = "routes_reference_draws"


def routes_reference_draws(adapter: base.Adapter) -> bool:
    return bool(getattr(adapter, ATTRIBUTE, False))


def compared_view(adapter: base.Adapter) -> base.Adapter:
    """A shallow copy of ``adapter`` whose noise checks run against the reference's values."""
    if not routes_reference_draws(adapter):
        raise ValueError(f"{adapter.name} does not route the reference's draws (set {ATTRIBUTE} = True "
                         "only when every draw of the port comes from the reference)")
    view = copy.copy(adapter)
    view.capabilities = frozenset(adapter.capabilities) | {base.JAX_RNG}
    return view
