"""Backend adapters and how ``--backend`` names resolve to them.

Built-in names: ``jax_reference``, ``eggroll_torch`` (CPU), ``eggroll_torch-cuda`` (when
``torch.cuda.is_available()``), ``eggroll_torch-trainer`` (the public ``EggrollTrainer`` on the
CPU, :mod:`.eggroll_torch_trainer`), ``eggroll_torch-trainer-cuda`` and ``upstream`` (when
``$HYPERSCALEES_SRC`` is set). Anything of the form ``package.module:Name`` is a plug-in: ``Name``
is imported and called with no arguments and must give a :class:`~conformance.adapters.base.Adapter`. See
:mod:`conformance.adapters.base` for the protocol.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from .base import Adapter, BackendInfo, Unsupported


class BackendUnavailable(Exception):
    """A backend that cannot run here (its library or device is missing); the message says why."""


def _jax_reference() -> Adapter:
    try:
        import jax  # noqa: F401
    except ImportError as e:
        raise BackendUnavailable(f"JAX is not installed ({e})") from e
    from .jax_reference import JaxReferenceAdapter

    return JaxReferenceAdapter()


def _eggroll_torch(device: str, trainer: bool = False) -> Callable[[], Adapter]:
    """The functional layer's adapter, or with ``trainer`` the public ``EggrollTrainer``'s."""

    def make() -> Adapter:
        try:
            import torch
        except ImportError as e:
            raise BackendUnavailable(f"torch is not installed ({e})") from e
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable("torch.cuda.is_available() is False")
        try:
            from .eggroll_torch import EggrollTorchAdapter
            from .eggroll_torch_trainer import EggrollTrainerAdapter
        except ImportError as e:
            raise BackendUnavailable(f"eggroll_torch cannot be imported ({e})") from e
        return (EggrollTrainerAdapter if trainer else EggrollTorchAdapter)(device=device)

    return make


def _upstream() -> Adapter:
    from .upstream import UpstreamAdapter, upstream_src

    try:
        upstream_src()
        import jax  # noqa: F401
    except (LookupError, ImportError) as e:
        raise BackendUnavailable(str(e)) from e
    return UpstreamAdapter()


BUILTIN: dict[str, Callable[[], Adapter]] = {
    "jax_reference": _jax_reference,
    "eggroll_torch": _eggroll_torch("cpu"),
    "eggroll_torch-cuda": _eggroll_torch("cuda"),
    "eggroll_torch-trainer": _eggroll_torch("cpu", trainer=True),
    "eggroll_torch-trainer-cuda": _eggroll_torch("cuda", trainer=True),
    "upstream": _upstream,
}


def load_plugin(spec: str) -> Adapter:
    """``package.module:Name`` -> ``Name()``; ``TypeError``/``ValueError`` say what is wrong."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"backend {spec!r}: expected a built-in name ({', '.join(BUILTIN)}) or 'package.module:Name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise BackendUnavailable(f"cannot import {module_name}: {e}") from e
    factory = getattr(module, attr, None)
    if factory is None:
        raise ValueError(f"backend {spec!r}: module {module_name} has no {attr!r}")
    adapter = factory()
    if not isinstance(adapter, Adapter):
        raise TypeError(f"backend {spec!r}: {attr}() returned {type(adapter).__name__}, not a conformance Adapter")
    return adapter


def resolve(name: str) -> Adapter:
    """The adapter for a ``--backend`` value; raises :class:`BackendUnavailable` with the reason."""
    if name in BUILTIN:
        return BUILTIN[name]()
    return load_plugin(name)


@dataclass
class Resolved:
    adapters: list
    unavailable: dict  # name -> reason


def resolve_all(names: list[str] | None) -> Resolved:
    """Adapters for ``names`` (default: every built-in that can run here), with why others cannot."""
    chosen = names or list(BUILTIN)
    out = Resolved([], {})
    for name in chosen:
        try:
            out.adapters.append(resolve(name))
        except BackendUnavailable as e:
            out.unavailable[name] = str(e)
    return out


__all__ = ["Adapter", "BackendInfo", "BackendUnavailable", "Unsupported", "BUILTIN", "resolve", "resolve_all",
           "load_plugin"]
