"""Model primitives (upstream's ``hyperscalees.models`` without the LLM models).

``rl`` (actor-critic policies) is not imported here: it needs the ``rl`` extra (gymnax, distrax).
"""
from . import base_model, common

__all__ = ["base_model", "common"]
