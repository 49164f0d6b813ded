"""Whether the Triton kernels of eggroll_torch (random and fast) can run for tensors on a given device.

Triton is optional: it is not a dependency of the package. Kernels run on CUDA devices when
``triton`` imports, and on CPU tensors only under Triton's interpreter (``TRITON_INTERPRET=1``
set before the first import of triton), which is how the tests check them without a GPU.
"""
from __future__ import annotations

import importlib.util
import os

import torch


_TRITON_INSTALLED: list[bool] = []


def triton_installed() -> bool:
    """True when the ``triton`` package can be imported (looked up once per process: the
    lookup costs tens of microseconds, and the kernels' dispatch asks on every call)."""
    # A module-level value rather than functools.cache: the models' forward asks this on every
    # call, and torch 2.11's dynamo breaks the graph at a cached function and then fails
    # (an internal IndexError) where RWKV-7's time mixing resumes.
    if not _TRITON_INSTALLED:
        _TRITON_INSTALLED.append(importlib.util.find_spec("triton") is not None)
    return _TRITON_INSTALLED[0]


def interpreting() -> bool:
    """True when Triton's CPU interpreter is switched on for this process."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def triton_usable(device: torch.device | str) -> bool:
    """True when the kernels can run on tensors living on ``device``."""
    if not triton_installed():
        return False
    kind = torch.device(device).type
    return kind == "cuda" or (kind == "cpu" and interpreting())
