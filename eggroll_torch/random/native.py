"""The CPU kernels in C: compiled on first use, loaded with ``ctypes``, optional.

Hashing in torch ops makes ~100 passes over memory per draw and the float32 normal table is a
32 MiB random gather; a C loop keeps each counter in vector registers and computes XLA:CPU's
``erf_inv`` directly (``xla_normal.h``, the same operations as :mod:`xla_cpu_f32`), which is
several times faster than both. Sources are built with the system C compiler (``$CC``, else
``cc``) into ``$EGGROLL_TORCH_CACHE`` (else ``~/.cache/eggroll_torch``). Without a compiler,
:func:`load` returns None and callers use torch ops; the values are the same either way.

Build flags matter for exactness: ``-ffp-contract=off`` keeps every multiply-add the source
does not spell as ``fmaf`` separately rounded. ``-fno-math-errno``/``-fno-trapping-math`` only
let the compiler vectorize ``sqrtf`` and the branch selects; no value-changing option is used.
"""
from __future__ import annotations

import concurrent.futures
import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile

import torch

from .float_bits import FORMATS

_HERE = os.path.dirname(os.path.abspath(__file__))
_HEADER = os.path.join(_HERE, "xla_normal.h")
_FLAGS = ("-O3", "-shared", "-fPIC", "-std=c99", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math")
# Compilers without target_clones("arch=...") build for their default target instead.
_FALLBACK_FLAGS = ("-DEGGROLL_NO_CLONES",)
I64 = ctypes.c_int64
# Below this many values a draw runs on the calling thread (thread hand-off costs ~50 us).
_PARALLEL_MIN = 1 << 16


def _cache_dir() -> str:
    return os.environ.get("EGGROLL_TORCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "eggroll_torch")


def _compile(compiler: str, source: str, target: str) -> bool:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(target))
    os.close(fd)
    try:
        for extra in ((), _FALLBACK_FLAGS):
            done = subprocess.run([compiler, *_FLAGS, *extra, "-I", _HERE, source, "-o", tmp],
                                  capture_output=True, timeout=120)
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
def load(source: str):
    """The ``ctypes.CDLL`` of C file ``source`` (which may include ``xla_normal.h``), or None
    when it cannot be built or loaded here. Cached per source and process."""
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        return None
    digest = hashlib.sha256()
    for path in (source, _HEADER):
        with open(path, "rb") as f:
            digest.update(f.read())
    digest.update(repr((_FLAGS, compiler, platform.machine())).encode())
    stem = os.path.splitext(os.path.basename(source))[0]
    target = os.path.join(_cache_dir(), f"{stem}_{digest.hexdigest()[:16]}.so")
    if not os.path.exists(target) and not _compile(compiler, source, target):
        return None
    try:
        return ctypes.CDLL(target)
    except OSError:
        return None


def void_function(source: str, name: str, argtypes: list):
    """The function ``name`` (returning void) of C file ``source`` with ``argtypes``, or None
    when the file cannot be built or loaded here."""
    lib = load(source)
    if lib is None:
        return None
    fn = getattr(lib, name)
    fn.restype = None
    fn.argtypes = argtypes
    return fn


@functools.lru_cache(maxsize=None)
def _normal_functions():
    source = os.path.join(_HERE, "normal_cpu.c")
    if load(source) is None:
        return None
    pointer = ctypes.c_void_p
    return (void_function(source, "eggroll_normal_rows",
                          [pointer, I64, I64, I64, pointer, I64, I64, ctypes.c_uint32, pointer]),
            void_function(source, "eggroll_normal_f32_mantissas", [I64, I64, pointer]),
            void_function(source, "eggroll_threefry2x32", [pointer] * 4 + [I64, I64, pointer, pointer]))


def available() -> bool:
    """True when the C kernels of :mod:`eggroll_torch.random` can run here."""
    return _normal_functions() is not None


@functools.lru_cache(maxsize=None)
def _pool(workers: int) -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eggroll_native")


def parallel(total: int, work, item_size: int = 1) -> None:
    """``work(start, stop)`` over ``[0, total)`` cut into one range per torch thread.

    ``item_size``: values computed per item, so that small draws stay on this thread. ctypes
    releases the GIL during a C call, so the ranges run concurrently.
    """
    workers = max(1, min(torch.get_num_threads(), total, total * item_size // _PARALLEL_MIN))
    if workers == 1:
        work(0, total)
        return
    bounds = [total * i // workers for i in range(workers + 1)]
    for future in [_pool(workers).submit(work, a, b) for a, b in zip(bounds[:-1], bounds[1:])]:
        future.result()


def normal_rows(keys: torch.Tensor, out: torch.Tensor, table: torch.Tensor | None) -> None:
    """Fill the contiguous CPU tensor ``out`` ``(B, n)`` with normals of the partitionable layout.

    ``keys``: ``(B, 2)`` uint32 on the CPU. ``table`` None computes XLA:CPU's float32 values
    (``out`` float32); otherwise ``out[b, j]`` is ``table`` at the word's mantissa bits for
    ``out.dtype`` (4- or 2-byte entries, ``out.dtype == table.dtype``). :func:`available` must be True.
    """
    rows, _, _ = _normal_functions()
    fmt = FORMATS[out.dtype]
    keys = keys.contiguous()
    n = out.shape[1]
    table_ptr = None if table is None else table.contiguous().data_ptr()
    parallel(out.numel(), lambda a, b: rows(keys.data_ptr(), n, a, b, table_ptr, out.element_size(), fmt.shift,
                                            fmt.mask, out.data_ptr()))


def threefry_words(words: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The hash of :func:`eggroll_torch.random.threefry.threefry2x32` on contiguous CPU int32
    tensors ``(k0, k1, x0, x1)`` of one shape; returns new ``(y0, y1)`` of that shape.
    :func:`available` must be True."""
    _, _, hashes = _normal_functions()
    y0, y1 = torch.empty_like(words[0]), torch.empty_like(words[0])
    pointers = [w.data_ptr() for w in words]
    # Each hash is ~70 instructions: item_size spreads only large batches over threads.
    parallel(y0.numel(), lambda a, b: hashes(*pointers, a, b, y0.data_ptr(), y1.data_ptr()), item_size=64)
    return y0, y1


def normal_f32_mantissas(start: int, stop: int) -> torch.Tensor:
    """XLA:CPU's float32 normal for every mantissa in ``[start, stop)`` (see :mod:`normal_tables`)."""
    _, mantissas, _ = _normal_functions()
    out = torch.empty(stop - start, dtype=torch.float32)
    parallel(out.numel(), lambda a, b: mantissas(start + a, start + b, out[a:].data_ptr()))
    return out
