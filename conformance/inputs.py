"""The shared input catalog: fitness vectors, thread-id sets, keys and shapes.

Every array is drawn from a numpy generator seeded by a stable hash of a name, so the same
name gives the same bytes on every machine and every backend is fed identical inputs.
"""
from __future__ import annotations

import zlib

import numpy as np

from .spec import VARIANCE_EPS, Population


def rng(name: str) -> np.random.Generator:
    """A generator seeded by ``crc32(name)``: stable across runs, processes and machines."""
    return np.random.Generator(np.random.PCG64(zlib.crc32(name.encode())))


def key(name: str) -> np.ndarray:
    """A threefry key as two uint32 words, derived from ``name``."""
    return rng("key:" + name).integers(0, 2**32, size=2, dtype=np.uint32)


# name -> what it exercises. Each gives float32 (n,).
FITNESS_KINDS = {
    "normal": "standard normal scores",
    "ties": "many exactly equal scores",
    "constant": "every score equal (zero variance)",
    "range_1e6": "scores spread over [-1e6, 1e6]",
    "tiny_variance": "variance about 1e-8, below the 1e-5 epsilon",
    "negative": "all scores negative, as losses turned into fitness are",
    "outlier": "zeros and one huge score",
}


def fitness(kind: str, n: int, name: str = "") -> np.ndarray:
    """Raw scores ``(n,)`` float32 of one of :data:`FITNESS_KINDS`."""
    if kind not in FITNESS_KINDS:
        raise ValueError(f"fitness kind must be one of {sorted(FITNESS_KINDS)}, got {kind!r}")
    g = rng(f"fitness:{kind}:{n}:{name}")
    if kind == "normal":
        x = g.standard_normal(n)
    elif kind == "ties":
        x = g.integers(0, 3, size=n).astype(np.float64)
    elif kind == "constant":
        x = np.full(n, 3.25)
    elif kind == "range_1e6":
        x = g.uniform(-1e6, 1e6, size=n)
    elif kind == "tiny_variance":
        x = 1e-4 * g.standard_normal(n)
    elif kind == "negative":
        x = -np.abs(g.standard_normal(n)) * 10 - 1
    else:
        x = np.zeros(n)
        x[g.integers(0, n)] = 1e4
    return x.astype(np.float32)


def zscore(raw, group_size: int = 0, ddof: int = 0) -> np.ndarray:
    """The harness's own fitness shaping, upstream's z-score in float64: ``(raw - mean) /
    sqrt(var + VARIANCE_EPS)`` of ``raw (N,)``, ``(N,)``. With ``group_size`` each group of that
    many consecutive scores subtracts its own mean; all divide by the GLOBAL root. ``ddof=1``
    takes the sample variance instead of the population's, as torch's default does."""
    r = np.asarray(raw, np.float64)
    spread = np.sqrt(r.var(ddof=ddof) + VARIANCE_EPS)
    if group_size == 0:
        return (r - r.mean()) / spread
    groups = r.reshape(-1, group_size)
    return ((groups - groups.mean(axis=1, keepdims=True)) / spread).ravel()


# name -> how the thread ids of a population of n are chosen.
THREAD_SETS = ("full", "permuted", "subset", "offset")


def thread_ids(kind: str, n: int, name: str = "") -> np.ndarray:
    """int32 ``(n,)`` thread ids: ``full`` 0..n-1, ``permuted`` a shuffle of it, ``subset`` n
    distinct ids out of 0..3n-1 (pairs may be broken), ``offset`` 1000..1000+n-1."""
    g = rng(f"threads:{kind}:{n}:{name}")
    if kind == "full":
        t = np.arange(n)
    elif kind == "permuted":
        t = g.permutation(n)
    elif kind == "subset":
        t = np.sort(g.choice(3 * n, size=n, replace=False))
    elif kind == "offset":
        t = np.arange(1000, 1000 + n)
    else:
        raise ValueError(f"thread set must be one of {THREAD_SETS}, got {kind!r}")
    return t.astype(np.int32)


def population(kind: str, n: int, epoch=0, name: str = "") -> Population:
    return Population.of(thread_ids(kind, n, name), epoch)


def normal(name: str, shape: tuple, scale: float = 1.0, dtype=np.float32) -> np.ndarray:
    return (rng("normal:" + name).standard_normal(shape) * scale).astype(dtype)
