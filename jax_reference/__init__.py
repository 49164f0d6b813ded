"""Our JAX implementation of upstream HyperscaleES's core behaviour (commit b77f7d6).

Module paths mirror upstream with ``jax_reference`` in place of ``hyperscalees``, so
``import jax_reference as hs`` runs code written against upstream's ``hs.noiser`` and
``hs.models.common``.
"""
from . import environments, llm, models, noiser

__all__ = ["UPSTREAM_COMMIT", "environments", "llm", "models", "noiser"]

UPSTREAM_COMMIT = "b77f7d6"
