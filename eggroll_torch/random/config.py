"""Process-wide switches mirroring the two JAX flags that change random words.

``jax_threefry_partitionable`` (default ``True`` since jax 0.5) selects how ``split`` and
``bits`` lay counters out; ``jax_enable_x64`` (default ``False``) decides whether a seed keeps
its upper 32 bits. Every function that depends on one of them also takes a per-call keyword
that overrides the value set here.

The backend does not change any value, only how draws are computed: ``"eager"`` runs torch
operations block by block, ``"compiled"`` uses fused ``torch.compile`` kernels (a one-time
compilation of tens of seconds on CPU), ``"kernel"`` runs ``normal`` through the hand-written
kernels (C on the CPU, :mod:`native`; Triton on CUDA, :mod:`triton_normal`) and is an error where
they cannot run; ``"auto"`` (default) uses those kernels for ``normal`` where they can run, and
otherwise compiles only for large draws on CUDA. Under ``"auto"`` and ``"kernel"`` the Threefry
hash of key derivations (``fold_in``, ``split``) also runs as one kernel call where it can
(:mod:`.threefry`), else as torch ops.
"""
from __future__ import annotations

_STATE = {"threefry_partitionable": True, "enable_x64": False, "backend": "auto"}
BACKENDS = ("auto", "eager", "compiled", "kernel")


def _check_flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool (True or False), got {value!r}")
    return value


def set_threefry_partitionable(value: bool) -> None:
    """Set the default of ``jax_threefry_partitionable`` used when a call passes ``None``.

    Process-wide; it changes the words of ``split``, ``bits``, ``uniform`` and ``normal``.

    Args:
        value (bool): ``True`` (the initial default, as jax >= 0.5) or ``False``.

    Raises:
        TypeError: ``value`` is not a bool.
    """
    _STATE["threefry_partitionable"] = _check_flag("threefry_partitionable", value)


def set_enable_x64(value: bool) -> None:
    """Set the default of ``jax_enable_x64`` used when a call passes ``None``.

    Process-wide; it decides whether ``key``/``PRNGKey`` keep a 64-bit seed's high word and how
    ``uniform`` rounds Python-number bounds.

    Args:
        value (bool): ``False`` (the initial default, as JAX's) or ``True``.

    Raises:
        TypeError: ``value`` is not a bool.
    """
    _STATE["enable_x64"] = _check_flag("enable_x64", value)


def threefry_partitionable(override: bool | None = None) -> bool:
    """The partitionable setting in force: ``override`` unless it is ``None``."""
    if override is None:
        return _STATE["threefry_partitionable"]
    return _check_flag("partitionable", override)


def enable_x64(override: bool | None = None) -> bool:
    """The x64 setting in force: ``override`` unless it is ``None``."""
    if override is None:
        return _STATE["enable_x64"]
    return _check_flag("x64", override)


def set_backend(name: str) -> None:
    """Choose how draws are computed; every backend gives the same values.

    Process-wide; the module docstring describes each backend.

    Args:
        name (str): ``"auto"`` (the initial default), ``"eager"``, ``"compiled"`` or
            ``"kernel"``.

    Raises:
        ValueError: ``name`` is not one of these.
    """
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {name!r}")
    _STATE["backend"] = name


def backend() -> str:
    """The backend set by :func:`set_backend`."""
    return _STATE["backend"]
