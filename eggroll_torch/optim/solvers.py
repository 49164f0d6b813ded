"""Turn the ``solver=`` argument of ``init_noiser`` into a solver factory ``(lr, **kwargs)``."""
from __future__ import annotations

import torch

from .alias import adam, adamw, sgd
from .torch_optimizer import from_torch_optimizer

SOLVERS = {"sgd": sgd, "adam": adam, "adamw": adamw}


def resolve_solver(solver):
    """``None`` -> ``sgd`` (upstream's default); a name in :data:`SOLVERS`; a
    ``torch.optim.Optimizer`` subclass (wrapped, outside parity); or any callable
    ``(learning_rate, **kwargs) -> GradientTransformation``.
    """
    if solver is None:
        return sgd
    if isinstance(solver, str):
        if solver not in SOLVERS:
            raise ValueError(f"solver: unknown name {solver!r}; use one of {sorted(SOLVERS)} or pass a callable")
        return SOLVERS[solver]
    if isinstance(solver, type) and issubclass(solver, torch.optim.Optimizer):
        return from_torch_optimizer(solver)
    if callable(solver):
        return solver
    raise TypeError(
        f"solver must be None, a name in {sorted(SOLVERS)}, a torch.optim.Optimizer class or a "
        f"callable (learning_rate, **kwargs) -> GradientTransformation; got {type(solver).__name__}"
    )
