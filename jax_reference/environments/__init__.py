"""LLM bandit tasks with JAX arrays (upstream's ``hyperscalees.environments``)."""
from . import llm_bandits

__all__ = ["llm_bandits"]
