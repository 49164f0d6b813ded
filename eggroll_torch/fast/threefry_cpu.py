"""The CPU counterpart of :mod:`.threefry_kernel`: the same bulk draw as a small C function.

Hashing in torch ops makes ~100 passes over memory per draw; the C loop keeps each counter in
registers (and is vectorized by the compiler), which is what makes the CPU path fast. The source
(``threefry_cpu.c``) is compiled on first use with the system C compiler (``$CC``, else ``cc``)
into a cache directory (``$EGGROLL_TORCH_CACHE``, else ``~/.cache/eggroll_torch``) and loaded with
``ctypes``; without a compiler, :func:`library` returns None and callers use the torch path.
Values come from the same normal table as ``eggroll_torch.random``, so they are exact.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile

import torch

_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "threefry_cpu.c")
_FLAGS = ("-O3", "-shared", "-fPIC", "-std=c99")
_FALLBACK_FLAGS = ("-DEGGROLL_NO_CLONES",)
_I64 = ctypes.c_int64


def _cache_dir() -> str:
    return os.environ.get("EGGROLL_TORCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "eggroll_torch")


def _compile(compiler: str, target: str) -> bool:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(target))
    os.close(fd)
    try:
        for extra in ((), _FALLBACK_FLAGS):
            done = subprocess.run([compiler, *_FLAGS, *extra, _SOURCE, "-o", tmp], capture_output=True, timeout=120)
            if done.returncode == 0:
                os.replace(tmp, target)  # atomic: concurrent first uses never load a partial file
                return True
        return False
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@functools.lru_cache(maxsize=None)
def library():
    """The loaded C function, or None when it cannot be built or loaded here."""
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        return None
    with open(_SOURCE, "rb") as f:
        digest = hashlib.sha256(f.read() + repr((_FLAGS, compiler, platform.machine())).encode()).hexdigest()[:16]
    target = os.path.join(_cache_dir(), f"threefry_cpu_{digest}.so")
    if not os.path.exists(target) and not _compile(compiler, target):
        return None
    try:
        fn = ctypes.CDLL(target).eggroll_pair_normals
    except OSError:
        return None
    fn.restype = None
    fn.argtypes = [ctypes.c_void_p, _I64, _I64, ctypes.c_uint32, _I64, _I64, ctypes.c_void_p, _I64, _I64,
                   ctypes.c_uint32, ctypes.c_void_p, _I64, _I64, _I64, _I64]
    return fn


def draw(layer_keys: torch.Tensor, true_epoch: int, table: torch.Tensor, out: torch.Tensor, *,
         shift: int, mask: int) -> None:
    """Fill the CPU tensor ``out`` ``(L, P, rows, cols)`` (any strides) like
    :func:`.threefry_kernel.launch_normals`; ``library()`` must not be None."""
    keys = layer_keys.contiguous()
    table = table.contiguous()
    layers, pairs, rows, cols = out.shape
    library()(keys.data_ptr(), layers, pairs, true_epoch % 2**32, rows, cols, table.data_ptr(),
              out.element_size(), shift, mask, out.data_ptr(), *out.stride())
