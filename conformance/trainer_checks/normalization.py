"""Fitness shaping, observed through the update: with ``group_size = G`` each group of ``G``
consecutive members subtracts its own mean and all divide by the global ``sqrt(var + 1e-5)``."""
from __future__ import annotations

from ._common import noise_case
from .base import TrainerCheck, register
from .probes import MATRICES
from .update import step_violations


@register
class ObservedGroup(TrainerCheck):
    id = "normalization.observed_group"
    component = "Normalization"
    summary = "group_size=8: the update weighs each member by its group-centred score over the global std"
    power = ("exact algebra on the observed matrix noise within the ascent_step law (the matrices only, so that an "
             "update bug elsewhere is update.observed_noise's finding); shaping over the whole population or "
             "per-group stds move the step by far more")

    def cases(self):
        return [noise_case("group8", lr=0.1, group_size=8)]

    def judge(self, observer, case):
        run = observer.run(case.config, 1)
        return step_violations(run, case.config.group_size, MATRICES)
