"""Functional models over nested dicts of tensors, mirroring upstream's ``hyperscalees.models``."""
from . import base_model, common, rl

__all__ = ["base_model", "common", "rl"]
