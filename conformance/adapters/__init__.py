"""Backend adapters and how ``--backend`` names resolve to them.

Built-in names: ``jax_reference``, ``eggroll_torch`` (CPU), ``eggroll_torch-cuda`` (when
``torch.cuda.is_available()``), ``eggroll_torch-trainer`` (the public ``EggrollTrainer`` on the
CPU, :mod:`.eggroll_torch_trainer`), ``eggroll_torch-trainer-cuda`` and ``upstream`` (when
``$HYPERSCALEES_SRC`` is set). Anything else is a plug-in (:func:`load_plugin`):
``package.module:Name`` or ``path/to/adapter.py[:Name]``, whose ``Name`` is called with no
arguments and must give a :class:`~conformance.adapters.base.Adapter`. See
:mod:`conformance.adapters.base` for the protocol.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .base import Adapter, BackendInfo, Unsupported, unknown_capabilities
from .trainer import TrainerAdapter


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


class AdapterError(Exception):
    """A ``--backend`` value that names no usable adapter: malformed, missing, its constructor
    raised, or it declares a capability no check knows (which would silently skip every check
    needing the intended one). The message is one line naming the adapter."""


def _import_module(spec: str, module_name: str):
    """The module of a plug-in: a dotted module name, or a ``.py`` file (imported by its dotted
    name when it sits in a package on ``sys.path``, so relative imports work; else loaded
    under a private name)."""
    if module_name.endswith(".py") or "/" in module_name:
        path = Path(module_name).expanduser()
        if not path.is_file():
            raise AdapterError(f"adapter {spec!r}: no such file {str(path)!r}")
        dotted = _dotted_name(path.resolve())
        if dotted is not None:
            module_name = dotted
        else:
            return _exec_file(spec, path)
    try:
        return importlib.import_module(module_name)
    except Exception as e:
        raise BackendUnavailable(f"adapter {spec!r}: cannot import {module_name}: {_one_line(e)}") from e


def _dotted_name(path: Path) -> str | None:
    """``package.module`` of a file inside packages rooted at a ``sys.path`` entry, else None."""
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    roots = {Path(p or ".").resolve() for p in sys.path}
    return ".".join(parts) if len(parts) > 1 and folder in roots else None


def _exec_file(spec: str, path: Path):
    name = f"_conformance_plugin_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise BackendUnavailable(f"adapter {spec!r}: importing {path} raised {_one_line(e)}") from e
    return module


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _single_adapter_class(spec: str, module) -> str:
    found = sorted(name for name, value in vars(module).items()
                   if isinstance(value, type) and issubclass(value, (Adapter, TrainerAdapter))
                   and value.__module__ == module.__name__)
    if len(found) != 1:
        what = "no Adapter subclass" if not found else f"several Adapter subclasses ({', '.join(found)})"
        raise AdapterError(f"adapter {spec!r}: the file defines {what}; name one as {spec}:ClassName")
    return found[0]


def load_plugin(spec: str) -> Adapter | TrainerAdapter:
    """The adapter a ``--backend`` plug-in names: ``package.module:Name``, ``path/to/file.py:Name``
    or ``path/to/file.py`` (the one :class:`Adapter` or :class:`~.trainer.TrainerAdapter`
    subclass the file defines); ``Name`` is called with no arguments.

    Raises:
        BackendUnavailable: the module cannot be imported (a library it needs is missing).
        AdapterError: the spec is malformed, the file is missing, the module lacks ``Name``,
            ``Name()`` raised or is not an :class:`Adapter`, or the adapter declares an unknown
            capability.

    Every message is one line and starts with ``adapter '<spec>':``.
    """
    module_name, sep, attr = spec.partition(":")
    is_file = module_name.endswith(".py")
    if not module_name or (not sep and not is_file) or (sep and not attr):
        near = difflib.get_close_matches(spec, list(BUILTIN), n=1)
        hint = f"did you mean {near[0]!r}? Otherwise expected" if near else "expected"
        raise AdapterError(f"adapter {spec!r}: {hint} a built-in name ({', '.join(BUILTIN)}), "
                           "'package.module:Name' or 'path/to/adapter.py[:Name]'")
    module = _import_module(spec, module_name)
    if not attr:
        attr = _single_adapter_class(spec, module)
    factory = getattr(module, attr, None)
    if factory is None:
        near = difflib.get_close_matches(attr, [n for n in vars(module) if not n.startswith("_")], n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise AdapterError(f"adapter {spec!r}: module {module_name} has no {attr!r}{hint}")
    try:
        adapter = factory()
    except Exception as e:
        raise AdapterError(f"adapter {spec!r}: {attr}() raised {_one_line(e)}") from e
    if isinstance(adapter, TrainerAdapter):
        return adapter
    if not isinstance(adapter, Adapter):
        raise AdapterError(f"adapter {spec!r}: {attr}() returned {type(adapter).__name__}, not a conformance "
                           "Adapter (subclass conformance.adapters.base.Adapter, or .trainer.TrainerAdapter for a "
                           "port that only exposes a trainer)")
    unknown = unknown_capabilities(adapter.capabilities)
    if unknown:
        raise AdapterError(f"adapter {spec!r}: " + "; ".join(unknown))
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
    """Adapters for ``names`` (default: every built-in that can run here), with why others cannot.

    A built-in that cannot run here is listed in ``unavailable``; a plug-in that cannot be loaded
    raises (:class:`BackendUnavailable` or :class:`AdapterError`), since it was asked for by name.
    """
    chosen = names or list(BUILTIN)
    out = Resolved([], {})
    for name in chosen:
        try:
            out.adapters.append(resolve(name))
        except BackendUnavailable as e:
            if name not in BUILTIN:
                raise
            out.unavailable[name] = str(e)
    return out


__all__ = ["Adapter", "AdapterError", "BackendInfo", "BackendUnavailable", "TrainerAdapter", "Unsupported", "BUILTIN",
           "resolve", "resolve_all", "load_plugin"]
