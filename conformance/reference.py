"""Where expected outputs come from: golden vectors first, the live JAX reference otherwise.

Golden vectors make the check independent of JAX being installed (a torch-only machine is
checked against the committed numbers); the live reference covers cases that have no vector
(the ``deep`` profile, hypothesis examples) when JAX is available. :func:`live_reference` finds
that adapter.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import adapters as adapter_registry
from .golden import Entry, VectorStore
from .tolerances import dtype_name


class MissingReference(Exception):
    """No golden vector for a case and no live reference to compute it."""


@dataclass
class Expected:
    outputs: dict
    dtypes: dict
    aux: dict = field(default_factory=dict)
    source: str = "vectors"


class Reference:
    """Expected outputs of check cases. ``live`` is the jax_reference adapter, or ``None``."""

    def __init__(self, store: VectorStore | None, live=None):
        self.store = store
        self.live = live
        self._cache: dict[tuple, Expected] = {}

    @property
    def has_live(self) -> bool:
        return self.live is not None

    def expected(self, check, case) -> Expected:
        """Raises :class:`~conformance.golden.StaleVector` or :class:`MissingReference`."""
        entry = self.store.get(check.id, case) if self.store is not None else None
        if entry is not None:
            return _from_entry(entry)
        if self.live is None:
            raise MissingReference(f"no golden vector for {check.id}/{case.case_id} and JAX is not installed")
        return self.compute_live(check, case)

    def compute_live(self, check, case) -> Expected:
        """Run the case on the live reference (cached per case fingerprint)."""
        key = (check.id, case.case_id, case.fingerprint())
        if key not in self._cache:
            outputs = check.compute(self.live, case)
            aux = check.aux(self.live, case) if check.injectable else None
            self._cache[key] = Expected(
                outputs={k: np.asarray(v) for k, v in outputs.items()},
                dtypes={k: dtype_name(np.asarray(v)) for k, v in outputs.items()},
                aux={k: np.asarray(v) for k, v in (aux or {}).items()}, source="live")
        return self._cache[key]


def live_reference(adapters: list):
    """The ``jax_reference`` adapter: the one among ``adapters`` if there, else a new one; ``None`` without JAX."""
    for a in adapters:
        if a.name == "jax_reference":
            return a
    try:
        return adapter_registry.resolve("jax_reference")
    except adapter_registry.BackendUnavailable:
        return None


def reference_for(store: VectorStore, adapters: list) -> Reference:
    """The reference of a run over ``adapters``: ``store``'s golden vectors (when its directory
    exists), then :func:`live_reference` for cases without one. A run and its ``--jobs`` workers
    build it alike, so a result does not depend on the process."""
    return Reference(store if store.exists() else None, live_reference(adapters))


def _from_entry(entry: Entry) -> Expected:
    return Expected(dict(entry.outputs), dict(entry.dtypes), dict(entry.aux), "vectors")
