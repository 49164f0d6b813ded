"""Which registered checks a command takes: ``--check`` globs over check ids."""
from __future__ import annotations

import difflib
import fnmatch

from .base import REGISTRY


def select_checks(patterns: list[str] | None, registry: dict | None = None) -> list:
    """Checks of ``registry`` (default: :data:`~.base.REGISTRY`) whose id matches any glob in
    ``patterns`` (all when empty), in id order.

    A pattern that matches no check raises :class:`UnknownCheck` naming the nearest ids: a typo
    must not run nothing and pass.
    """
    registry = REGISTRY if registry is None else registry
    ids = sorted(registry)
    if patterns:
        unknown = [p for p in patterns if not any(fnmatch.fnmatch(i, p) for i in ids)]
        if unknown:
            raise UnknownCheck("; ".join(_unknown_message(p, ids) for p in unknown))
        ids = [i for i in ids if any(fnmatch.fnmatch(i, p) for p in patterns)]
    return [registry[i] for i in ids]


class UnknownCheck(ValueError):
    """A ``--check`` pattern that matches no registered check."""


def _unknown_message(pattern: str, ids: list[str]) -> str:
    components = sorted({i.split(".", 1)[0] + ".*" for i in ids})
    near = difflib.get_close_matches(pattern, ids + components, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(near)}?" if near else "see 'python -m conformance list'"
    return f"--check {pattern!r} matches no check; {hint}"
