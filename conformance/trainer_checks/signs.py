"""Antithetic pairs, observed through the trainer: member ``2p + 1``'s perturbation is exactly
minus member ``2p``'s, for matrices and vectors alike (upstream's sign is the thread id's parity)."""
from __future__ import annotations

import numpy as np

from ._common import noise_case
from .base import TrainerCheck, register
from .probes import EXACT


@register
class AntitheticExact(TrainerCheck):
    id = "signs.antithetic_exact"
    component = "Signs"
    summary = "member 2p+1's perturbation is exactly minus member 2p's, and it is not zero"
    power = "exact: every parameter the probe observes without rounding, all 32 pairs, bit for bit, with " \
            "noise_reuse=1 and with upstream's default noise_reuse=0"

    def cases(self):
        return [noise_case(), noise_case("probe-reuse0", noise_reuse=0)]

    def judge(self, observer, case):
        run = observer.run(case.config, 1)
        members = run.perturbations[0]
        out = []
        for p in range(len(members) // 2):
            for name in EXACT:
                plus, minus = members[2 * p][name], members[2 * p + 1][name]
                if not np.any(plus):
                    out.append(f"pair {p} {name}: member {2 * p} is not perturbed")
                elif not np.array_equal(minus, -plus):
                    worst = float(np.max(np.abs(minus + plus)))
                    out.append(f"pair {p} {name}: member {2 * p + 1} is not minus member {2 * p} "
                               f"(max |sum| {worst:.3g}, |member {2 * p}| up to {np.max(np.abs(plus)):.3g})")
        return out, 0.0
