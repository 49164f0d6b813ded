"""Model primitives (upstream's ``hyperscalees.models`` without the RL and LLM models)."""
from . import base_model, common

__all__ = ["base_model", "common"]
