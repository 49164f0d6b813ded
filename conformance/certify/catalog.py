"""The published PyTorch ports ``make certify-ports`` installs and certifies, pinned by version.

Each entry names the PyPI distribution, the exact version its adapter was written against, the
adapter (``module:Class``) and any extra ``pip install`` flag with the reason for it. Ports are
installed with ``--no-deps`` (:func:`ensure_installed`) into the running interpreter's
environment: their own dependencies (torchvision, transformers, vllm, ...) are never pulled in,
and each adapter imports only the port's torch-only modules.
"""
from __future__ import annotations

import importlib
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path


@dataclass(frozen=True)
class PortSpec:
    """One published port: ``pip install --no-deps {distribution}=={version} {pip_flags}``, or,
    for a port published only as source (``source`` set, ``on_pypi`` false), a checkout the user
    gives with ``--port-src`` (``PORT_SRC=`` for make)."""

    distribution: str
    version: str
    adapter: str
    import_name: str
    pip_flags: tuple = ()
    flags_reason: str = ""
    source: str = ""
    on_pypi: bool = True

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    @property
    def report_stem(self) -> str:
        return f"{self.distribution}-{self.version}"


PORTS = (
    PortSpec("torcheggroll", "0.2.0", "conformance.adapters.ports.torcheggroll:TorchEggrollAdapter", "torcheggroll"),
    PortSpec("eggroll-trainer", "0.1.0", "conformance.adapters.ports.eggroll_trainer:EggrollTrainerAdapter",
             "eggroll_trainer", ("--ignore-requires-python",),
             "the wheel declares Requires-Python >=3.12 but its code runs on the project's 3.11"),
    PortSpec("eggroll-es", "0.2.0", "conformance.adapters.ports.eggroll_es:EggrollEsAdapter", "eggroll"),
    PortSpec("eggroll-pytorch", "0.1.0", "conformance.adapters.ports.eggroll_pytorch:EggrollPytorchAdapter",
             "eggroll", source="https://github.com/Daulbaev/eggroll-pytorch", on_pypi=False),
)


def find(name: str) -> PortSpec:
    """The catalog entry whose distribution (or ``distribution==version``) is ``name``."""
    for spec in PORTS:
        if name in (spec.distribution, spec.requirement):
            return spec
    known = ", ".join(p.requirement for p in PORTS)
    raise ValueError(f"--port {name!r} is not in the catalog ({known}); certify another port with "
                     "--backend package.module:Adapter")


@dataclass
class Install:
    """How a port got into the environment: the command run (if any) and what it said."""

    requirement: str
    command: list = field(default_factory=list)
    ok: bool = True
    detail: str = ""


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def ensure_installed(spec: PortSpec, python: str = sys.executable) -> Install:
    """``pip install --no-deps <spec>`` into ``python``'s environment unless that version is there."""
    if installed_version(spec.distribution) == spec.version:
        return Install(spec.requirement, detail="already installed")
    command = [python, "-m", "pip", "install", "--no-deps", "--quiet", *spec.pip_flags, spec.requirement]
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    except OSError as e:
        return Install(spec.requirement, command, False, f"cannot run {python}: {e}")
    importlib.invalidate_caches()
    detail = (done.stdout + done.stderr).strip()[-2000:]
    ok = done.returncode == 0 and installed_version(spec.distribution) == spec.version
    return Install(spec.requirement, command, ok, detail or "installed")


@dataclass
class Source:
    """A port imported from a local checkout: where, its git commit (``""`` outside git) and
    whether the work tree had uncommitted changes."""

    path: str
    commit: str
    dirty: bool


def use_source(path: str, import_name: str | None) -> Source:
    """Put the checkout at ``path`` first on ``sys.path`` (its ``src/`` when the package lives
    there) and forget any already imported ``import_name``, so the checkout is what imports.

    Raises:
        ValueError: ``path`` is not a directory, or ``import_name`` is not a package in it.
    """
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise ValueError("not a directory")
    base = root / "src" if (root / "src").is_dir() and not (root / (import_name or "")).exists() else root
    if import_name is not None and not ((base / import_name).is_dir() or (base / f"{import_name}.py").is_file()):
        raise ValueError(f"no package {import_name!r} in {base}; is this a checkout of the port?")
    sys.path.insert(0, str(base))
    if import_name is not None:
        for name in [m for m in sys.modules if m == import_name or m.startswith(import_name + ".")]:
            del sys.modules[name]
    importlib.invalidate_caches()
    return Source(str(root), _git(root, "rev-parse", "--short=7", "HEAD"), bool(_git(root, "status", "--porcelain")))


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
