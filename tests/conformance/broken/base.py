"""Machinery of the deliberately broken backends: eggroll_torch with exactly one behaviour changed.

A :class:`Mutant` is the eggroll_torch adapter plus hooks. Noise bugs are written once, as a
change of the drawn noise (:meth:`Mutant.factors`, :meth:`Mutant.full`) or of which member /
epoch / rank a draw belongs to (:meth:`Mutant.members`, :meth:`Mutant.draw_config`). They live
in a subclass of the noiser that overrides its noise seam (``lora_noise``, ``full_noise``), which
the adapter then calls for every operation: the noise draws, the forward passes and
``do_updates`` all see the same broken noise, as they would in a real port. Bugs of fitness
shaping, solver or keys override that one operation instead.
"""
from __future__ import annotations

import numpy as np

from conformance.adapters.eggroll_torch import EggrollTorchAdapter
from conformance.bugs import BUGS
from conformance.spec import NoiserConfig, Population
from eggroll_torch.noiser import lora_sigma


class Mutant(EggrollTorchAdapter):
    """eggroll_torch with one bug. A subclass named as an entry of :data:`conformance.bugs.BUGS`
    gets from it ``bug`` (what a port got wrong), ``flagged_by`` (the check whose id names that
    behaviour) and ``flag`` (the cases that expose it), and overrides one hook or operation; a noise bug
    sets ``changes_noise`` so that its hooks replace the noiser's. ``caught_as`` is the gate rule
    that catches it: ``regression`` (the named check fails) or ``drifted`` (the check still passes,
    its error within the tolerance but past what the baseline recorded)."""

    bug = ""
    flagged_by = ""
    flag = None
    changes_noise = False
    caught_as = "regression"

    def __init_subclass__(cls, **kwargs):
        # The words live in conformance.bugs, where the golden vectors' notes read them.
        super().__init_subclass__(**kwargs)
        entry = BUGS.get(cls.__name__)
        if entry is not None:
            cls.bug, cls.flagged_by, cls.flag = entry.text, entry.check, entry.flag

    def __init__(self):
        super().__init__("cpu")
        self.name = "broken." + type(self).__name__

    # ---- hooks: identity unless a bug overrides them ----------------------------------------
    def members(self, config: NoiserConfig, population: Population) -> tuple[NoiserConfig, Population]:
        """Which (config, population) the draws are taken for."""
        return config, population

    def factors(self, config: NoiserConfig, shape: tuple, population: Population, a, b):
        """Low-rank factors ``(N, a, r), (N, b, r)`` as the broken port ends up with them."""
        return a, b

    def full(self, config: NoiserConfig, population: Population, noise):
        """Full-rank noise ``(N, *shape)`` as the broken port ends up with it."""
        return noise

    def update_noise(self, config: NoiserConfig, kind: str, arrays: tuple) -> tuple:
        """Noise as the broken port's UPDATE uses it (the forward pass is unaffected)."""
        return arrays

    def draw_config(self, config: NoiserConfig, shape: tuple) -> NoiserConfig:
        """The config a matrix of ``shape`` draws its factors with."""
        return config

    # ---- the broken noiser --------------------------------------------------------------------
    def noiser_cls(self, config):
        noiser = super().noiser_cls(config)
        if not self.changes_noise or not hasattr(noiser, "lora_noise"):
            return noiser
        return self.broken_draws(noiser, config)

    def update_noiser(self, config, noise, keys):
        noiser = super().update_noiser(config, noise, keys)
        if not self.changes_noise or not hasattr(noiser, "lora_noise"):
            return noiser
        return self.broken_update(noiser, config)

    def _population(self, iterinfo) -> Population:
        return Population(*(self.out(t) for t in iterinfo))

    def broken_draws(self, noiser, config: NoiserConfig):
        """A subclass of ``noiser`` whose draws go through the hooks. Stacked leaves (a key with
        several rows) keep the noiser's own draw."""
        mutant = self

        class Broken(noiser):
            @classmethod
            def lora_noise(cls, frozen_noiser_params, base_sigma, iterinfo, param, key):
                if key.ndim != 1:
                    return super().lora_noise(frozen_noiser_params, base_sigma, iterinfo, param, key)
                population = mutant._population(iterinfo)
                shape = tuple(param.shape)
                drawn_for, members = mutant.members(config, population)
                drawn_for = mutant.draw_config(drawn_for, shape)
                if drawn_for.rank != config.rank:
                    base_sigma = lora_sigma(drawn_for.sigma, drawn_for.rank, param.dtype, param.device)
                frozen = {**frozen_noiser_params, "noise_reuse": drawn_for.noise_reuse, "rank": drawn_for.rank}
                a, b = super().lora_noise(frozen, base_sigma, mutant.population(members), param, key)
                a, b = mutant.factors(drawn_for, shape, population, mutant.out(a), mutant.out(b))
                return mutant.tensor(a).to(param.dtype), mutant.tensor(b).to(param.dtype)

            @classmethod
            def full_noise(cls, frozen_noiser_params, base_sigma, iterinfo, param, key):
                if key.ndim != 1:
                    return super().full_noise(frozen_noiser_params, base_sigma, iterinfo, param, key)
                population = mutant._population(iterinfo)
                drawn_for, members = mutant.members(config, population)
                frozen = {**frozen_noiser_params, "noise_reuse": drawn_for.noise_reuse}
                noise = super().full_noise(frozen, base_sigma, mutant.population(members), param, key)
                return mutant.tensor(mutant.full(drawn_for, population, mutant.out(noise))).to(param.dtype)

        return Broken

    def broken_update(self, noiser, config: NoiserConfig):
        """A subclass of ``noiser`` (the one ``do_updates`` runs) whose draws pass :meth:`update_noise`."""
        mutant = self

        def as_updated(kind, arrays, param):
            return tuple(mutant.tensor(a).to(param.dtype)
                         for a in mutant.update_noise(config, kind, tuple(mutant.out(t) for t in arrays)))

        class BrokenUpdate(noiser):
            @classmethod
            def lora_noise(cls, frozen_noiser_params, base_sigma, iterinfo, param, key):
                return as_updated("lora", super().lora_noise(frozen_noiser_params, base_sigma, iterinfo, param, key),
                                  param)

            @classmethod
            def full_noise(cls, frozen_noiser_params, base_sigma, iterinfo, param, key):
                noise = super().full_noise(frozen_noiser_params, base_sigma, iterinfo, param, key)
                return as_updated("full", (noise,), param)[0]

        return BrokenUpdate


def member_scale(config: NoiserConfig, population: Population) -> np.ndarray:
    """``+-sigma / sqrt(rank)`` per member, the factor upstream folds into ``A``: ``(N, 1, 1)``."""
    sign = np.where(population.thread_ids % 2 == 0, 1.0, -1.0)
    return (sign * np.float32(config.sigma) / np.sqrt(np.float32(config.rank)))[:, None, None]
