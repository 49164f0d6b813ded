"""Deliberately broken backends (eggroll_torch with one bug each) that the harness must catch."""
from .catalog import CATALOG

__all__ = ["CATALOG"]
