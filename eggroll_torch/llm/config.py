"""The settings of an LLM evolution run, shared by ``eggroll_torch.llm`` and ``jax_reference.llm``
(they hold no arrays, so one class serves both, as the tokenizers and text tasks are shared)."""
from __future__ import annotations

import dataclasses
import math

__all__ = ["NOISER_NAMES", "EvolutionConfig"]

# The keys of both packages' ``all_noisers``.
NOISER_NAMES = ("noop", "open_es", "eggroll", "eggrollbs", "alteggroll", "reeggroll", "sparse")


@dataclasses.dataclass(frozen=True)
class EvolutionConfig:
    """The settings of an LLM evolution run (upstream's ``Args``, defaults included, where they
    change numbers); ``jax_reference.llm`` and ``eggroll_torch.llm`` share this class.

    Attributes:
        seed (int): the master key's seed.
        generation_length (int): tokens per generation ``T``, prompt included.
        parallel_generations (int): population size ``N``; a multiple of ``generations_per_prompt``.
        generations_per_prompt (int): members per prompt ``G``, the fitness normalisation group.
        sigma (float): noise scale. lr_scale (float): the noiser's learning rate.
        noise_reuse (int): epochs that share one noise draw (0: the same noise forever).
        freeze_nonlora (bool): no noise and no update for ``PARAM`` leaves.
        rank (int): EGGROLL's noise rank (upstream's single-GPU script leaves it at 1).
        temperature (float): sampling temperature; 0 is greedy.
        noiser (str): a name of ``all_noisers`` (the same names on both sides).
        validate_every (int): validate before epochs ``e`` with ``e % validate_every == 0``; 0 never.
        parallel_validations (int), validation_iterations (int): validation generations per
            batch and batches per validation.
    """

    seed: int = 0
    generation_length: int = 200
    parallel_generations: int = 1024
    generations_per_prompt: int = 8
    sigma: float = 1e-3
    lr_scale: float = 1.0
    noise_reuse: int = 1
    freeze_nonlora: bool = True
    rank: int = 1
    temperature: float = 0.0
    noiser: str = "eggroll"
    validate_every: int = 10
    parallel_validations: int = 128
    validation_iterations: int = 10

    def __post_init__(self):
        positive = ("generation_length", "parallel_generations", "generations_per_prompt", "rank",
                    "parallel_validations", "validation_iterations")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"EvolutionConfig.{name} must be a positive int; got {value!r}")
        for name in ("noise_reuse", "validate_every", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"EvolutionConfig.{name} must be a non-negative int; got {value!r}")
        if self.parallel_generations % self.generations_per_prompt:
            raise ValueError(
                f"EvolutionConfig.parallel_generations ({self.parallel_generations}) must be a multiple of "
                f"generations_per_prompt ({self.generations_per_prompt}); change one of them")
        for name in ("sigma", "lr_scale", "temperature"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"EvolutionConfig.{name} must be a finite number; got {value!r}")
        if self.temperature < 0:
            raise ValueError(f"EvolutionConfig.temperature must be >= 0 (0 is greedy); got {self.temperature!r}")
        if self.noiser not in NOISER_NAMES:
            raise ValueError(f"EvolutionConfig.noiser must be one of {sorted(NOISER_NAMES)}; got {self.noiser!r}")

    @property
    def prompts_per_epoch(self) -> int:
        """``P = N // G``: distinct prompts per epoch."""
        return self.parallel_generations // self.generations_per_prompt
