"""LLM bandit tasks (upstream's ``hyperscalees.environments``).

``llm_bandits``: the tasks with torch tensors in and out. ``bandit_text``: their string, scoring
and data-reading logic, free of torch and jax, which ``jax_reference.environments`` shares.
``llm_bandits`` is imported on first access, so that importing ``bandit_text`` (as
``jax_reference`` does) does not import torch.
"""
import importlib

__all__ = ["bandit_text", "llm_bandits"]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
