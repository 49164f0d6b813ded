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


# CPU features that change which kernels oneDNN and XLA:CPU pick, and so the last bits of results
# (avx512_fp16 hosts round float16 once per fused op in XLA, for one).
_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_tile", "amx_bf16")


def host_fingerprint(backend: str) -> str:
    """What a backend's last bits depend on besides the code: the CUDA device for ``*-cuda``
    backends, else the CPU's architecture and the features of :data:`_CPU_FLAGS`; plus the
    versions of the libraries. Equal fingerprints reproduce a run's ULP errors exactly."""
    versions = library_versions()
    libs = ",".join(f"{k}={versions[k]}" for k in ("torch", "jax", "jaxlib"))
    if backend.endswith("-cuda"):
        try:
            import torch

            device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no cuda"
        except ImportError:
            device = "no torch"
        return f"cuda {device}; {libs}"
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")),
                         []))
    except OSError:
        flags = set()
    return f"{platform.machine()} {'+'.join(f for f in _CPU_FLAGS if f in flags) or 'baseline'}; {libs}"


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
