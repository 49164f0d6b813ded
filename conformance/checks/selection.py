"""Which registered checks a command takes: ``--check`` globs over check ids."""
from __future__ import annotations

import fnmatch

from .base import REGISTRY


def select_checks(patterns: list[str] | None) -> list:
    """Registered checks whose id matches any glob in ``patterns`` (all when empty), in id order.

    A pattern that matches no check raises ``ValueError``: a typo must not run nothing and pass.
    """
    ids = sorted(REGISTRY)
    if patterns:
        unknown = [p for p in patterns if not any(fnmatch.fnmatch(i, p) for i in ids)]
        if unknown:
            raise ValueError(f"--check {unknown} matches no check; see 'python -m conformance list'")
        ids = [i for i in ids if any(fnmatch.fnmatch(i, p) for p in patterns)]
    return [REGISTRY[i] for i in ids]
