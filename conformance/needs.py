"""What each check needs from an adapter, and what an adapter is missing for each check.

A check runs on an adapter when the adapter declares every capability in ``check.requires``
(cases may ask for more, e.g. ``dtype:bfloat16``); each operation capability promises the
adapter methods of :data:`conformance.adapters.base.CAPABILITY_OPERATIONS`. Checks of noise
drawn by JAX's PRNG (``check.rng``) compare values only with :data:`~conformance.adapters.base.JAX_RNG`;
otherwise they are injected or reduced to laws (see :func:`conformance.runner.plan`).
"""
from __future__ import annotations

from dataclasses import dataclass

from .adapters import base as caps


@dataclass(frozen=True)
class Needs:
    """One check's requirements: ``capabilities`` of the check itself, ``case_capabilities``
    that only some of its cases ask for, the ``operations`` those promise, and ``rng``, how a
    port without JAX's PRNG is judged."""

    check_id: str
    capabilities: tuple
    case_capabilities: tuple
    operations: tuple
    rng: str


def needs(check, profile: str = "ci") -> Needs:
    """The :class:`Needs` of ``check`` for the cases of ``profile``."""
    try:
        cases = check.cases(profile)
    except caps.Unsupported:
        cases = []
    case_caps = sorted({c for case in cases for c in case.requires} - set(check.requires))
    operations = sorted({op for c in check.requires for op in caps.CAPABILITY_OPERATIONS.get(c, ())})
    if not check.rng:
        rng = "values compared for every port"
    elif check.injectable:
        rng = "values with jax_rng, else with inject_noise (the reference's noise fed in)" \
            + (", else laws" if check.own_rng_relations else "")
    elif check.own_rng_relations:
        rng = "values with jax_rng, else laws only"
    else:
        rng = "needs jax_rng (skipped otherwise)"
    return Needs(check.id, tuple(sorted(check.requires)), tuple(case_caps), tuple(operations), rng)


def missing_for(check, adapter, profile: str = "ci") -> list[str]:
    """What ``adapter`` lacks for ``check`` to run fully: undeclared capabilities, declared
    operations it does not implement, and the JAX PRNG where the check cannot do without it."""
    need = needs(check, profile)
    declared = set(adapter.capabilities)
    implemented = caps.implemented_operations(adapter)
    out = [f"capability {c!r}" for c in need.capabilities if c not in declared]
    out += [f"operation {op}() (declared through its capability but not overridden)"
            for op in need.operations if op not in implemented
            and any(op in caps.CAPABILITY_OPERATIONS[c] for c in need.capabilities if c in declared)]
    if check.rng and caps.JAX_RNG not in declared:
        if check.injectable and caps.INJECT_NOISE not in declared:
            out.append("capability 'jax_rng' or 'inject_noise' for values"
                       + (" (laws still run)" if check.own_rng_relations else ""))
        elif not check.injectable:
            out.append("capability 'jax_rng' for values" + (" (laws still run)" if check.own_rng_relations else ""))
    some = [c for c in need.case_capabilities if c not in declared]
    if some:
        out.append(f"for some cases: {', '.join(some)}")
    return out
