"""Antithetic sampling: threads 2i and 2i+1 share noise with opposite signs."""
from __future__ import annotations

from dataclasses import replace

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

    branches = {"noise_reuse_0": "noise_reuse=0 (upstream's default): one noise for every epoch",
                "noise_reuse_1": "noise_reuse=1 at epoch 3: fresh noise each epoch, the pairing unchanged (a port "
                                 "may pair members right in one regime only)"}

    def cases(self, profile):
        frozen = [replace(noise_case(f"{kind}-n{n}", NoiserConfig(rank=2, sigma=0.4), inputs.population(kind, n),
                                     (4, 3), (5,)), flags=frozenset({"noise_reuse_0"}))
                  for kind, n in (("full", 8), ("permuted", 8), ("offset", 6), ("full", 16))]
        fresh = noise_case("full-n8-reuse1-epoch3", NoiserConfig(rank=2, sigma=0.4, noise_reuse=1),
                           inputs.population("full", 8, epoch=3), (4, 3), (5,))
        return [*frozen, replace(fresh, flags=frozenset({"noise_reuse_1"}))]

    def branch_hit(self, flag, case, outputs):
        return case["config"].noise_reuse == int(flag[-1])

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
