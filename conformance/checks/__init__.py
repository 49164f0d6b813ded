"""The check registry: importing this package registers every check in :data:`REGISTRY`.

Check ids are ``<component>.<behaviour>``; :mod:`conformance.components` maps every behaviour
of upstream (``UPSTREAM.md``) to the checks that cover it.
"""
from . import forward, keys, noise, noisers, normalization, optimizer, signs, trajectory, update
from .base import REGISTRY, Case, Check, register

__all__ = ["REGISTRY", "Case", "Check", "register"]
