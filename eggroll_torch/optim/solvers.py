"""Turn the ``solver=`` argument of ``init_noiser`` into a solver factory ``(lr, **kwargs)``."""
from __future__ import annotations

import functools
import sys

import torch

from .alias import adam, adamw, sgd
from .torch_optimizer import from_torch_optimizer

SOLVERS = {"sgd": sgd, "adam": adam, "adamw": adamw}


def _is_optax(obj) -> bool:
    module = getattr(obj, "__module__", None)
    return isinstance(module, str) and (module == "optax" or module.startswith("optax."))


def _optax_label(fn) -> str:
    """``optax.<name>`` for a public optax factory, else its full dotted path."""
    name = getattr(fn, "__name__", type(fn).__name__)
    if getattr(sys.modules.get("optax"), name, None) is fn:
        return f"optax.{name}"
    return f"{fn.__module__}.{getattr(fn, '__qualname__', name)}"


def _from_optax(solver):
    """eggroll_torch's factory for an optax factory (or a ``functools.partial`` of one, which is how
    optax defines ``nadam``/``nadamw``), or None when ``solver`` does not come from optax; a
    ValueError for an optax callable with no equivalent."""
    if isinstance(solver, functools.partial):
        inner = _from_optax(solver.func)
        return None if inner is None else functools.partial(inner, *solver.args, **solver.keywords)
    if not _is_optax(solver):
        return None
    name = getattr(solver, "__name__", None)
    # SOLVERS uses optax's names, signatures and defaults, so optax.<name> maps to SOLVERS[name]; the
    # identity check keeps an unrelated optax callable that merely shares a name from being mapped.
    if name in SOLVERS and getattr(sys.modules.get("optax"), name, None) is solver:
        return SOLVERS[name]
    raise ValueError(
        f"solver: {_optax_label(solver)} has no eggroll_torch equivalent; use one of {sorted(SOLVERS)}, "
        f"as a name or as optax.<name> (optax.nadam and optax.nadamw work too)"
    )


def _is_built_transformation(obj) -> bool:
    return not callable(obj) and callable(getattr(obj, "init", None)) and callable(getattr(obj, "update", None))


def resolve_solver(solver):
    """The factory ``(learning_rate, **kwargs) -> GradientTransformation`` that ``solver`` names.

    ``None`` -> ``sgd`` (upstream's default); a name in :data:`SOLVERS`; a
    ``torch.optim.Optimizer`` subclass (wrapped, outside parity); an optax factory, replaced by
    eggroll_torch's own implementation with the same keyword arguments and defaults:
    ``optax.sgd`` -> :func:`sgd`, ``optax.adam`` -> :func:`adam`, ``optax.adamw`` -> :func:`adamw`,
    and a ``functools.partial`` of those (``optax.nadam`` -> ``adam`` with ``nesterov=True``,
    ``optax.nadamw`` -> ``adamw`` with ``nesterov=True``) keeps its bound arguments; or any other
    callable, returned as is. optax is never imported here: its factories are recognised by
    their ``__module__``, and keyword values pass through unchanged (a ``mu_dtype`` must be a
    ``torch.dtype``).

    Raises:
        ValueError: an unknown name, or an optax callable with no eggroll_torch equivalent.
        TypeError: an already-built transformation (``optax.adam(1e-3)``) instead of its factory,
            or anything else that is not callable.
    """
    if solver is None:
        return sgd
    if isinstance(solver, str):
        if solver not in SOLVERS:
            raise ValueError(f"solver: unknown name {solver!r}; use one of {sorted(SOLVERS)} or pass a callable")
        return SOLVERS[solver]
    if isinstance(solver, type) and issubclass(solver, torch.optim.Optimizer):
        return from_torch_optimizer(solver)
    if _is_built_transformation(solver):
        raise TypeError(
            f"solver must be a factory called as solver(lr, **solver_kwargs), not an already-built "
            f"{type(solver).__name__}: pass e.g. optax.adam (not optax.adam(1e-3)) or a name in {sorted(SOLVERS)}"
        )
    if not callable(solver):
        raise TypeError(
            f"solver must be None, a name in {sorted(SOLVERS)}, a torch.optim.Optimizer class or a "
            f"callable (learning_rate, **kwargs) -> GradientTransformation; got {type(solver).__name__}"
        )
    mapped = _from_optax(solver)
    return solver if mapped is None else mapped
