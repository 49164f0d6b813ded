"""End to end: upstream's 10-epoch MLP example, params after every epoch."""
from __future__ import annotations

import numpy as np

from ..adapters import base as caps
from ..spec import SolverSpec, TrajectorySpec
from ._common import flat
from .base import Case, Check, register


@register
class MlpE2E(Check):
    id = "trajectory.mlp_e2e"
    component = "End-to-end training"
    summary = ("upstream's example (MLP 3-16-16-1, EGGROLL rank 8, sigma 0.2, adamw lr 0.03, 64 members, "
               "keys fold_in(key(0), 0|1|2)) gives the same params every epoch")
    requires = frozenset({caps.TRAJECTORY})
    rng = True
    default_kind = "trajectory"
    keep_output_details = True

    def cases(self, profile):
        specs = [("upstream-example", TrajectorySpec())]
        if profile == "deep":
            specs.append(("sgd-30-epochs", TrajectorySpec(num_epochs=30, solver=SolverSpec.make("sgd"), lr=0.01)))
        return [Case(name, {"spec": spec}, frozenset({caps.TRAJECTORY, caps.noiser_capability(spec.noiser)}))
                for name, spec in specs]

    def compute(self, adapter, case, noise=None):
        run = adapter.mlp_trajectory(case["spec"])
        out = {"scores": np.asarray(run.scores)}
        for epoch, params in enumerate(run.params):
            out.update(flat(f"epoch{epoch:02d}", params))
        return out
