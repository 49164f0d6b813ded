"""One check per noiser besides EGGROLL: forward, noise, fitness shaping and one update each."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import inputs
from ..adapters import base as caps
from ..spec import MM_PARAM, PARAM, NoiserConfig, Population
from ._common import requires
from ._updates import UpdateCheck, update_case
from .base import Case, register

COMPONENT = "Other noisers"


def noiser_case(case_id: str, config: NoiserConfig, n_forward: int = 6, update_threads=None,
                raw_size: int | None = None, vector_x: bool = False) -> Case:
    """Forward inputs for ``n_forward`` members plus an update of a weight/bias tree.

    ``update_threads``: thread ids of the update population (default: the forward's);
    ``raw_size``: length of the raw scores shaped by ``convert_fitnesses``; ``vector_x``: one
    input vector per member (``x (N, in)``), for noisers whose ``do_mm`` takes no batch axis.
    """
    fwd = inputs.population("full", n_forward, name=case_id)
    upd = fwd if update_threads is None else Population.of(update_threads)
    base = update_case(case_id, config, {"w": ((4, 3), MM_PARAM), "b": ((4,), PARAM)}, upd, zero=False)
    x_shape = (n_forward, 3) if vector_x else (n_forward, 2, 3)
    data = {**base.inputs, "fwd_population": fwd, "param": inputs.normal(case_id + ":param", (4, 3)),
            "bias": inputs.normal(case_id + ":bias", (4,)), "x": inputs.normal(case_id + ":x", x_shape),
            "key": inputs.key(case_id), "raw": inputs.fitness("normal", raw_size or n_forward, case_id)}
    return Case(case_id, data, requires(config, extra={caps.UPDATES, caps.FORWARD, caps.CONVERT_FITNESSES}))


class NoiserCheck(UpdateCheck):
    """Runs every operation of one noiser; with injected noise only fitness shaping and the update."""

    requires = frozenset({caps.UPDATES, caps.FORWARD, caps.CONVERT_FITNESSES})
    output_kinds = {"B": "exact", "idx": "exact", "A": "elementwise", "noisy": "elementwise",
                    "values": "elementwise"}
    draws = ("lora",)

    def compute(self, adapter, case, noise=None):
        c = case["config"]
        out = {"fitness": np.asarray(adapter.convert_fitnesses(c, case["raw"]))}
        out.update(super().compute(adapter, case, noise))
        if noise is not None:
            return out
        pop, key = case["fwd_population"], case["key"]
        out["mm"] = np.asarray(adapter.do_mm(c, case["param"], key, pop, case["x"]))
        out["noisy"] = np.asarray(adapter.noisy_standard(c, case["bias"], key, pop))
        if "lora" in self.draws:
            out["A"], out["B"] = adapter.lora_factors(c, key, (4, 3), "float32", pop)
        if "sparse" in self.draws:
            out["values"], out["idx_a"], out["idx_b"] = adapter.sparse_noise(c, key, (4, 3), "float32", pop)
        return out


@register
class OpenES(NoiserCheck):
    id = "noiser.open_es"
    component = COMPONENT
    impact = "medium"
    summary = "OpenES: full-rank Gaussian noise on matrices too, same fitness shaping and update"
    draws = ()

    def cases(self, profile):
        return [noiser_case("open_es", NoiserConfig("open_es", sigma=0.1, lr=0.2))]


@register
class EggRollBS(NoiserCheck):
    id = "noiser.eggrollbs"
    component = COMPONENT
    impact = "medium"
    summary = ("EggRollBS: members 0 and 1 of each group unperturbed, fitness = column mean of "
               "(row - row[0]) / (row std + 1e-8), solver chained after clip_by_global_norm")

    branches = {"clip_idle": "the gradient's global norm is below trust_region_norm: clip_by_global_norm passes it",
                "clip_fires": "the gradient's global norm exceeds trust_region_norm: it is scaled down to that norm"}

    def cases(self, profile):
        c = NoiserConfig("eggrollbs", sigma=0.1, lr=0.5, rank=2, group_size=4, trust_region_norm=0.5)
        idle = noiser_case("eggrollbs-q2-g4", c, n_forward=8, update_threads=np.arange(4), raw_size=8)
        fires = noiser_case("eggrollbs-clipped", c.with_(trust_region_norm=0.02), n_forward=8,
                            update_threads=np.arange(4), raw_size=8)
        return [replace(idle, flags=frozenset({"clip_idle"})), replace(fires, flags=frozenset({"clip_fires"}))]

    def branch_hit(self, flag, case, outputs):
        # SGD moves the params by lr * clip(grad): the step's global norm is lr * trust_region_norm
        # exactly when the clip fires, and less when it does not.
        c = case["config"]
        step = np.sqrt(sum(np.sum((np.asarray(outputs[f"params/{k}"], np.float64)
                                   - np.asarray(case["params"][k], np.float64)) ** 2) for k in case["params"]))
        clipped = bool(abs(step - c.lr * c.trust_region_norm) <= 1e-4 * c.lr * c.trust_region_norm)
        return clipped if flag == "clip_fires" else step < c.lr * c.trust_region_norm and not clipped


@register
class AltEggRoll(NoiserCheck):
    id = "noiser.alteggroll"
    component = COMPONENT
    impact = "medium"
    summary = "alternating EGGROLL: matrix update from sign(A), sign(B) scaled by sigma * f / sqrt(rank)"

    def cases(self, profile):
        return [noiser_case("alteggroll", NoiserConfig("alteggroll", sigma=0.2, lr=0.5, rank=3))]


@register
class Sparse(NoiserCheck):
    id = "noiser.sparse"
    component = COMPONENT
    impact = "medium"
    summary = "Sparse: max(a, b) random entries per member, scatter-added update times k / (a*b)"
    draws = ("sparse",)
    injectable = False

    def cases(self, profile):
        return [noiser_case("sparse", NoiserConfig("sparse", sigma=0.2, lr=0.5), vector_x=True)]


@register
class Noop(NoiserCheck):
    id = "noiser.noop"
    component = COMPONENT
    impact = "low"
    summary = "the base Noiser: identity forward, raw fitnesses, params unchanged"
    draws = ()
    injectable = False
    rng = False

    def cases(self, profile):
        return [noiser_case("noop", NoiserConfig("noop"))]

    def relations(self, outputs, case):
        return self.unchanged(outputs, case, {0, 1, 2, 3})


@register
class ReEggRoll(NoiserCheck):
    id = "noiser.reeggroll"
    component = COMPONENT
    impact = "low"
    summary = "'reeggroll' is another name for EGGROLL"

    def cases(self, profile):
        return [noiser_case("reeggroll", NoiserConfig("reeggroll", sigma=0.1, lr=0.5, rank=2))]
