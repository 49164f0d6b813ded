"""What a benchmark result depends on: library versions, hardware, precision settings."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess

import torch

_PACKAGES = ("torch", "jax", "jaxlib", "optax", "numpy", "triton")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _commit(root: str | None = None) -> str | None:
    """The short commit hash of the repository at ``root`` (default: this checkout), with
    ``-dirty`` when tracked files differ from it (what was measured is then not that commit)."""
    root = root or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=root)
        changes = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                 text=True, timeout=10, cwd=root)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = head.stdout.strip()
    if not commit:
        return None
    return f"{commit}-dirty" if changes.returncode == 0 and changes.stdout.strip() else commit


def describe(device: str, f32_matmul: str) -> dict:
    """A JSON-ready description of this process's environment for ``device``."""
    info = {
        "versions": {p: _version(p) for p in _PACKAGES},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "float32_matmul": f32_matmul,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "commit": _commit(),
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["cuda"] = torch.version.cuda
    try:
        import jax

        info["jax_backend"] = jax.default_backend()
        info["jax_devices"] = [str(d) for d in jax.devices()]
    except Exception as error:  # noqa: BLE001 - a broken JAX install is reported, not fatal
        info["jax_backend"] = f"unavailable: {error!r}"
    return info
