"""The check registry and selection: importing this package registers every check in :data:`REGISTRY`.

Check ids are ``<component>.<behaviour>``; :mod:`conformance.components` maps every behaviour
of upstream (``docs/upstream-behaviour.md``) to the checks that cover it. :func:`select_checks` picks checks by
``--check`` globs for every command.
"""
# Imported for their side effect (noqa: F401): each check module registers its checks in REGISTRY.
from . import (  # noqa: F401
    api, forward, keys, llm, models, noise, noisers, normalization, optimizer, signs, trajectory, update,
)
from .base import REGISTRY, Case, Check, register
from .selection import select_checks

__all__ = ["REGISTRY", "Case", "Check", "register", "select_checks"]
