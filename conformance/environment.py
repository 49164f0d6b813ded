"""Versions, device and date that head every report."""
from __future__ import annotations

import datetime as _dt
from importlib import metadata
import os
import platform
import subprocess
from pathlib import Path

LIBRARIES = ("torch", "jax", "jaxlib", "optax", "numpy")


def library_versions() -> dict:
    """``{name: version or "not installed"}`` of the libraries the numbers depend on, plus python.

    Read from the installed distributions' metadata, so reporting a version imports nothing.
    """
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def device_description() -> str:
    cpu = platform.processor() or platform.machine()
    text = f"{platform.system()} {platform.machine()} ({cpu}), {os.cpu_count()} CPUs"
    try:
        import torch

        if torch.cuda.is_available():
            text += f"; CUDA {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return text


def git_commit(root: Path | None = None) -> str:
    root = root or Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def environment() -> dict:
    return {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "versions": library_versions(), "device": device_description(), "commit": git_commit()}
