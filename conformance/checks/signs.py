"""Antithetic sampling: threads 2i and 2i+1 share noise with opposite signs."""
from __future__ import annotations

import numpy as np

from .. import inputs
from ..spec import NoiserConfig, Population
from .base import register
from .noise import NoiseCheck, noise_case, pair_laws

COMPONENT = "Thread ID alternation"


@register
class AntitheticPair(NoiseCheck):
    id = "signs.antithetic_pair"
    component = COMPONENT
    summary = "threads 2i and 2i+1 are one pair: same factors, opposite sign (not i and i + N/2)"

    def cases(self, profile):
        return [noise_case(f"{kind}-n{n}", NoiserConfig(rank=2, sigma=0.4), inputs.population(kind, n), (4, 3), (5,))
                for kind, n in (("full", 8), ("permuted", 8), ("offset", 6), ("full", 16))]

    def relations(self, outputs, case):
        return pair_laws(outputs, case["population"].thread_ids)


@register
class Alternation(NoiseCheck):
    id = "signs.alternation"
    component = COMPONENT
    summary = "+sigma for even thread ids, -sigma for odd ones"

    def cases(self, profile):
        even = np.array([0, 2, 4, 6], np.int32)
        return [noise_case("pairs", NoiserConfig(rank=1, sigma=0.25), inputs.population("full", 6), (3, 2), (4,),
                           mm_x=2),
                noise_case("even-only", NoiserConfig(rank=1, sigma=0.25), Population.of(even), (3, 2), (4,)),
                noise_case("odd-only", NoiserConfig(rank=1, sigma=0.25), Population.of(even + 1), (3, 2), (4,))]

    def relations(self, outputs, case):
        return [m for m in pair_laws(outputs, case["population"].thread_ids) if "B differs" not in m]
