"""The solver behind ``do_updates``: optax's sgd / adam / adamw with optax's defaults."""
from __future__ import annotations

import numpy as np

from .. import inputs
from ..adapters import base as caps
from ..spec import MM_PARAM, PARAM, NoiserConfig, SolverSpec
from ..tolerances import compare
from ._common import flat, law
from ._updates import UpdateCheck, update_case
from .base import Case, Check, register

COMPONENT = "Optimizer"
LEAVES = {"w": (4, 3), "b": (4,)}


def steps_case(case_id: str, solver: SolverSpec, lr: float, steps: int = 4) -> Case:
    """Random params and ``steps`` random gradient trees (magnitudes spread over 1e-3..10)."""
    params = {k: inputs.normal(f"{case_id}:{k}", s) for k, s in LEAVES.items()}
    grads = []
    for i in range(steps):
        g = inputs.rng(f"{case_id}:grad{i}")
        grads.append({k: (g.standard_normal(s) * 10.0 ** g.uniform(-3, 1, size=s)).astype(np.float32)
                      for k, s in LEAVES.items()})
    return Case(case_id, {"solver": solver, "lr": lr, "params": params, "grads": grads},
                frozenset({caps.OPTIMIZER}))


class _Steps(Check):
    requires = frozenset({caps.OPTIMIZER})
    component = COMPONENT
    default_kind = "reduction"
    own_rng_relations = True

    def compute(self, adapter, case, noise=None):
        out = {}
        for i, p in enumerate(adapter.optimizer_steps(case["solver"], case["lr"], case["params"], case["grads"])):
            out.update(flat(f"step{i}", p))
        return out


@register
class Sgd(_Steps):
    id = "optimizer.sgd"
    summary = "optax.sgd(lr, momentum=None, nesterov=False) and its momentum variants"

    def cases(self, profile):
        return [steps_case("plain", SolverSpec.make("sgd"), 0.1),
                steps_case("momentum", SolverSpec.make("sgd", momentum=0.9), 0.05),
                steps_case("nesterov", SolverSpec.make("sgd", momentum=0.9, nesterov=True), 0.05)]


@register
class Adam(_Steps):
    id = "optimizer.adam"
    summary = "optax.adam: b1=0.9, b2=0.999, eps=1e-8 outside the sqrt, eps_root=0, bias correction"

    def cases(self, profile):
        return [steps_case("defaults", SolverSpec.make("adam"), 0.01, 5),
                steps_case("custom", SolverSpec.make("adam", b1=0.8, b2=0.99, eps=1e-6), 0.05, 5)]


def _first_adamw_step(params, grad, lr, wd=1e-4, eps=1e-8):
    """optax.adamw's first step from a fresh state, derived by hand: m_hat = g, v_hat = g**2."""
    g = grad.astype(np.float64)
    p = params.astype(np.float64)
    return p - lr * (g / (np.abs(g) + eps) + wd * p)


@register
class AdamwDefaults(_Steps):
    id = "optimizer.adamw_defaults"
    summary = "optax.adamw defaults: weight_decay=1e-4 on every leaf (torch AdamW: 1e-2), eps=1e-8"

    def cases(self, profile):
        return [steps_case("defaults", SolverSpec.make("adamw"), 0.1, 4)]

    def relations(self, outputs, case):
        msgs = []
        for k, p in case["params"].items():
            want = _first_adamw_step(p, case["grads"][0][k], case["lr"])
            got = np.asarray(outputs[f"step0/{k}"], np.float64)
            msgs += law(compare(got, want, "adamw_first_step").ok,
                        f"{k}: first adamw step is off by {np.abs(got - want).max():.3g} from weight_decay=1e-4")
        return msgs


@register
class Adamw(_Steps):
    id = "optimizer.adamw"
    summary = "optax.adamw with the end-to-end example's b1=0.9, b2=0.999 and an explicit weight decay"

    def cases(self, profile):
        return [steps_case("e2e-betas", SolverSpec.make("adamw", b1=0.9, b2=0.999), 0.03, 5),
                steps_case("wd1e-2", SolverSpec.make("adamw", weight_decay=1e-2), 0.03, 5)]


@register
class DefaultSolver(UpdateCheck):
    id = "optimizer.default_sgd"
    component = COMPONENT
    summary = "init_noiser without a solver uses optax.sgd(lr)"

    def cases(self, profile):
        leaves = {"w": ((4, 3), MM_PARAM), "b": ((4,), PARAM)}
        return [update_case("no-solver", NoiserConfig(rank=2, lr=0.3), leaves, inputs.population("full", 8),
                            zero=False)]


@register
class NoiserSolver(UpdateCheck):
    id = "optimizer.noiser_solver"
    component = COMPONENT
    summary = "init_noiser builds solver(lr, **solver_kwargs) and do_updates takes one step of it"

    def cases(self, profile):
        leaves = {"w": ((4, 3), MM_PARAM), "b": ((4,), PARAM)}
        return [update_case(f"{name}-in-noiser", NoiserConfig(rank=2, lr=0.1, solver=SolverSpec.make(name, **kw)),
                            leaves, inputs.population("full", 8), zero=False)
                for name, kw in (("adamw", {}), ("adam", {"b1": 0.5}), ("sgd", {"momentum": 0.9}))]
