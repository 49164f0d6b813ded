"""Upstream's LLM fine-tuning loop (``llm_experiments/``) as a library.

:mod:`.utils` holds the per-member generation (upstream's ``utils.build_generate_thread``) and
validation; :mod:`.evolution` the epoch of ``general_do_evolution.py``: prompts, one generation
per member, task fitness, the ES update.
"""
from . import evolution, utils
from .evolution import EpochResult, Evolution, EvolutionConfig, master_keys
from .utils import (build_generate_batch, build_generate_thread, build_validate, fold_in_helper, safe_decode,
                    sample_token)

__all__ = [
    "EpochResult",
    "Evolution",
    "EvolutionConfig",
    "build_generate_batch",
    "build_generate_thread",
    "build_validate",
    "evolution",
    "fold_in_helper",
    "master_keys",
    "safe_decode",
    "sample_token",
    "utils",
]
