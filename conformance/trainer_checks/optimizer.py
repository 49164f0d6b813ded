"""The solver, observed through the trainer: two generations of optax's ``adam`` / ``adamw`` on
the gradients upstream forms from the observed noise (``-sqrt(N) * mean(f * E)``), rebuilt in
float64 from optax's definitions: ``mu = b1 mu + (1 - b1) g``, ``nu = b2 nu + (1 - b2) g**2``,
step ``-lr * (mu_hat / (sqrt(nu_hat) + eps) + weight_decay * p)`` with bias-corrected moments."""
from __future__ import annotations

import numpy as np

from ._common import noise_case
from .base import TrainerCheck, register
from .update import compare_steps, estimates

GENERATIONS = 2


def adam_steps(run, weight_decay: float) -> list[dict]:
    """Each generation's expected step of every parameter (optax's adam/adamw, float64)."""
    options = run.config.solver_options
    b1, b2, eps, lr = options.get("b1", 0.9), options.get("b2", 0.999), options.get("eps", 1e-8), run.config.lr
    mu, nu, steps = {}, {}, []
    for t in range(GENERATIONS):
        step = {}
        for name, estimate in estimates(run, t, run.config.group_size).items():
            g = -estimate
            mu[name] = b1 * mu.get(name, 0.0) + (1 - b1) * g
            nu[name] = b2 * nu.get(name, 0.0) + (1 - b2) * g * g
            mu_hat, nu_hat = mu[name] / (1 - b1 ** (t + 1)), nu[name] / (1 - b2 ** (t + 1))
            step[name] = -lr * (mu_hat / (np.sqrt(nu_hat) + eps) + weight_decay * run.before[t][name])
        steps.append(step)
    return steps


@register
class ObservedAdam(TrainerCheck):
    id = "optimizer.observed_adam"
    component = "Optimizer"
    summary = "adam and adamw (optax's definitions) applied to upstream's gradient of the observed noise, 2 generations"
    power = "exact algebra on the observed noise within the ascent_step law; moments, bias correction, eps placement " \
            "and decoupled weight decay each move the second step by far more"

    def cases(self):
        return [noise_case("adam", lr=0.01, solver="adam", solver_kwargs=(("b1", 0.9), ("b2", 0.999))),
                noise_case("adamw", lr=0.01, solver="adamw",
                           solver_kwargs=(("b1", 0.9), ("b2", 0.999), ("weight_decay", 0.1)))]

    def judge(self, observer, case):
        run = observer.run(case.config, GENERATIONS)
        weight_decay = case.config.solver_options.get("weight_decay", 1e-4) if case.config.solver == "adamw" else 0.0
        out, worst = [], 0.0
        for t, want in enumerate(adam_steps(run, weight_decay)):
            violations, w = compare_steps(run, t, want)
            out += violations
            worst = max(worst, w)
        return out, worst
