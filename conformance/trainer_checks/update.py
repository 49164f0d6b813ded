"""The update, observed through the trainer: after one SGD generation the parameters moved by
``lr * sqrt(N) * mean_n(f_n * E_n)``, where ``E_n`` is member ``n``'s perturbation as the
forward applied it and ``f`` the z-scored raw fitnesses. This is upstream's estimate
(``-(grad * sqrt(N))`` followed by ``sgd(lr)``), its sign (ascent), ``1/N``, ``sqrt(N)`` and
shaping at once, with no shared RNG: the noise is the port's own, as observed."""
from __future__ import annotations

import numpy as np

from ..inputs import zscore
from ..tolerances import compare
from ._common import noise_case
from .base import TrainerCheck, register
from .probes import MATRICES

# Raw fitnesses of spread 1e-3 have a variance (1e-6) far below the shaping's 1e-5: the z-score's
# divisor is then sqrt(var + 1e-5) ~ 3.3e-3 upstream, and 1.0e-3 for std + 1e-5.
SMALL_SPREAD = 1e-3


def estimates(run, generation: int, group_size: int) -> dict[str, np.ndarray]:
    """Upstream's ``sqrt(N) * mean_n(f_n * E_n)`` of one generation, per parameter, in float64
    (minus the gradient the solver is given)."""
    shaped = zscore(run.raw[generation], group_size)
    members = run.perturbations[generation]
    n = len(members)
    return {name: np.sqrt(n) * sum(f * m[name] for f, m in zip(shaped, members)) / n for name in members[0]}


def step_violations(run, group_size: int, names=None) -> tuple[list[str], float]:
    """Each parameter's (or each of ``names``') observed SGD step against ``lr`` times
    :func:`estimates` under the ``ascent_step`` law."""
    want = {k: run.config.lr * v for k, v in estimates(run, 0, group_size).items() if names is None or k in names}
    return compare_steps(run, 0, want)


def compare_steps(run, generation: int, want: dict) -> tuple[list[str], float]:
    """The observed change of each parameter in ``want`` during ``generation`` against it."""
    out, worst = [], 0.0
    for name, step in want.items():
        got = run.after[generation][name] - run.before[generation][name]
        c = compare(got, step, "ascent_step")
        worst = max(worst, c.max_abs)
        if not c.ok:
            ratio = float(np.vdot(got, step) / np.vdot(step, step)) if np.any(step) else float("nan")
            out.append(f"generation {generation} {name}: {c.message('step')}; observed step / upstream's = "
                       f"{ratio:.4g} along it")
    return out, worst


@register
class ObservedUpdate(TrainerCheck):
    id = "update.observed_noise"
    component = "Update"
    summary = ("one SGD generation moves every matrix by lr * sqrt(N) * mean(z-scored f * observed low-rank "
               "perturbation)")
    power = ("exact algebra on the observed noise, within the ascent_step law (float32 rounding; a wrong sign, "
             "scale, estimator or shaping is off by far more); the small_spread case puts the shaping's eps "
             "where only sqrt(var + eps) passes")

    def cases(self):
        return [noise_case("sgd", lr=0.1), noise_case("small_spread", lr=0.1)]

    def judge(self, observer, case):
        scale = SMALL_SPREAD if case.case_id == "small_spread" else 1.0
        return step_violations(observer.run(case.config, 1, scale), 0, MATRICES)


@register
class ObservedVectorUpdate(TrainerCheck):
    id = "update.observed_vector"
    component = "Update"
    summary = "one SGD generation moves every vector (bias) by lr * sqrt(N) * mean(z-scored f * observed perturbation)"
    power = "exact algebra on the observed noise within the ascent_step law; a missing 1/N, sigma or sqrt(N) is off " \
            "by far more"

    def cases(self):
        return [noise_case("sgd", lr=0.1)]

    def judge(self, observer, case):
        run = observer.run(case.config, 1)
        return step_violations(run, 0, [name for name in run.perturbations[0][0] if name not in MATRICES])
