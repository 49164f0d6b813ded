"""What a check is: an id, the component it belongs to, its inputs and how to run them.

A check names ONE upstream behaviour (``<component>.<behaviour>``, e.g. ``noise.reuse_blocks``).
It builds deterministic :class:`Case` inputs, runs them on an adapter (:meth:`Check.compute`
returns a flat ``{name: array}``) and the runner compares every output with the reference's
under the tolerance kind :meth:`Check.kind` gives. :meth:`Check.relations` states laws the
outputs must obey on their own (e.g. "threads 2i and 2i+1 have opposite noise"); they are what
a port with its own RNG is checked against when its noise cannot be compared.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, is_dataclass

import numpy as np

IMPACTS = ("high", "medium", "low")


@dataclass(frozen=True)
class Case:
    """One input of a check. ``inputs`` holds arrays, configs, populations, trees and scalars;
    ``flags`` names the branches of its check (:attr:`Check.branches`) this case exercises
    (stored per case in the golden vectors, Wycheproof's ``flags``)."""

    case_id: str
    inputs: dict = field(default_factory=dict)
    requires: frozenset = frozenset()
    flags: frozenset = frozenset()

    def __getitem__(self, name):
        return self.inputs[name]

    def fingerprint(self) -> str:
        """sha256 of the inputs (dict order, dtypes and bytes included); golden vectors store it."""
        h = hashlib.sha256()
        _feed(h, self.inputs)
        return h.hexdigest()


def _feed(h, value) -> None:
    if isinstance(value, np.ndarray):
        h.update(f"nd{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        h.update(b"{")
        for k, v in value.items():
            h.update(repr(k).encode())
            _feed(h, v)
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[" if isinstance(value, list) else b"(")
        for v in value:
            _feed(h, v)
        h.update(b"]")
    elif is_dataclass(value):
        h.update(type(value).__name__.encode())
        _feed(h, {k: getattr(value, k) for k in value.__dataclass_fields__})
    elif isinstance(value, (np.integer, np.floating)):
        h.update(repr(value.item()).encode())
    else:
        h.update(json.dumps(value).encode())


class Check:
    """Base class of checks; subclasses set the class attributes and implement :meth:`cases` / :meth:`compute`.

    ``requires``: capabilities the adapter must declare. ``rng``: the outputs depend on drawn
    noise, so only adapters with :data:`~conformance.adapters.base.JAX_RNG` can be compared
    with the reference; others run :meth:`relations` only (if ``own_rng_relations``) or, for
    ``injectable`` checks with :data:`~conformance.adapters.base.INJECT_NOISE`, get the
    reference's noise through ``noise=`` (see :meth:`aux`). ``branches``: ``{flag: what the
    case does}`` for every branch the check claims to test; each must be some ci case's flag.
    """

    id: str = ""
    component: str = ""
    impact: str = "high"
    summary: str = ""
    requires: frozenset = frozenset()
    rng: bool = False
    injectable: bool = False
    own_rng_relations: bool = False
    default_kind: str = "exact"
    output_kinds: dict = {}
    keep_output_details: bool = False
    branches: dict = {}

    def cases(self, profile: str) -> list[Case]:
        raise NotImplementedError

    def compute(self, adapter, case: Case, noise=None) -> dict[str, np.ndarray]:
        """Run ``case`` on ``adapter``; ``noise`` is the reference noise for injected runs."""
        raise NotImplementedError

    def relations(self, outputs: dict[str, np.ndarray], case: Case) -> list[str]:
        """Violated laws of the outputs (empty when they all hold)."""
        return []

    def aux(self, reference, case: Case) -> dict | None:
        """Reference-side extra inputs (its noise) for injected runs; ``None`` if not injectable."""
        return None

    def case_flags(self, case: Case) -> frozenset:
        """The flags a case carries: its own, or the check's behaviour when it declares no branches."""
        return case.flags or frozenset({self.id.split(".", 1)[1]})

    def branch_hit(self, flag: str, case: Case, outputs: dict[str, np.ndarray]) -> bool | None:
        """Whether ``case`` (with the reference's ``outputs``) really takes branch ``flag``;
        ``None`` where only the flag says so. Overridden by checks whose branches can be seen."""
        return None

    def kind(self, output: str) -> str:
        """Tolerance kind of one output: the longest matching prefix in ``output_kinds``."""
        best = None
        for prefix, kind in self.output_kinds.items():
            if output.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
                best = (prefix, kind)
        return best[1] if best else self.default_kind

    def strategy(self, profile: str):
        """A hypothesis strategy of :class:`Case` for differential properties, or ``None``."""
        return None

    @property
    def component_id(self) -> str:
        return self.id.split(".", 1)[0]


REGISTRY: dict[str, Check] = {}


def register(cls):
    """Class decorator: instantiate the check and add it to :data:`REGISTRY` (ids must be unique)."""
    inst = cls()
    if not inst.id or "." not in inst.id:
        raise ValueError(f"{cls.__name__}: id must look like '<component>.<behaviour>', got {inst.id!r}")
    if inst.id in REGISTRY:
        raise ValueError(f"duplicate check id {inst.id!r}")
    if inst.impact not in IMPACTS:
        raise ValueError(f"{inst.id}: impact must be one of {IMPACTS}")
    REGISTRY[inst.id] = inst
    return cls


__all__ = ["Case", "Check", "REGISTRY", "register"]
