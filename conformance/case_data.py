"""A case's inputs as plain JSON plus arrays, so that golden vectors carry their own inputs.

A port in any language reads a case from its vector file instead of re-deriving it from this
harness's generators: the JSON names every value's type, arrays live in the ``.npz`` sidecar.
:func:`decode` rebuilds the exact Python inputs (same fingerprint), which is how the tests prove
the stored inputs are the ones the checks run.

Encoding, by value type (every non-scalar is an object with one tag key):

- ``{"array": key, "dtype": name, "shape": [...]}``: an ndarray stored in the npz under ``key``
  (bfloat16 stored as its exact float32 values, as the outputs are);
- ``{"scalar": value, "dtype": name}``: a numpy scalar;
- ``{"dict": {name: value}}`` (insertion order kept), ``{"list": [...]}``, ``{"tuple": [...]}``;
- ``{"type": name, "fields": {...}}``: a dataclass of :mod:`conformance.spec` (``NoiserConfig``,
  ``SolverSpec``, ``Population``, ``TrajectorySpec``, ``LeafNoise``);
- JSON numbers, strings, booleans and ``null`` as themselves.
"""
from __future__ import annotations

from dataclasses import fields, is_dataclass

import numpy as np

from . import spec
from .tolerances import dtype_name, numpy_dtype, to_numpy

DATACLASSES = {cls.__name__: cls for cls in (spec.NoiserConfig, spec.SolverSpec, spec.Population,
                                             spec.TrajectorySpec, spec.LeafNoise)}


def storable(array) -> tuple[np.ndarray, str]:
    """``(array as stored, dtype name)``; bfloat16 becomes float32, exactly."""
    name = dtype_name(array) if hasattr(array, "dtype") else np.asarray(array).dtype.name
    stored = to_numpy(array)
    if name == "bfloat16":
        stored = stored.astype(np.float32)
    return np.array(stored, order="C", copy=True), name


def as_recorded(stored: np.ndarray, dtype: str) -> np.ndarray:
    """The inverse of :func:`storable`: a stored array in the dtype it was recorded with."""
    return stored.astype(numpy_dtype(dtype)) if dtype == "bfloat16" else stored


def encode(value, arrays: dict[str, np.ndarray], prefix: str):
    """JSON for ``value``; its arrays are added to ``arrays`` under keys starting with ``prefix``."""
    if isinstance(value, np.ndarray):
        stored, dtype = storable(value)
        key = f"{prefix}_{len(arrays)}"
        arrays[key] = stored
        return {"array": key, "dtype": dtype, "shape": list(stored.shape)}
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return {"scalar": value.item(), "dtype": value.dtype.name}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"case inputs: dict keys must be strings, got {list(value)}")
        return {"dict": {k: encode(v, arrays, prefix) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [encode(v, arrays, prefix) for v in value]}
    if is_dataclass(value):
        if type(value).__name__ not in DATACLASSES:
            raise TypeError(f"case inputs: {type(value).__name__} is not one of {sorted(DATACLASSES)}")
        return {"type": type(value).__name__,
                "fields": {f.name: encode(getattr(value, f.name), arrays, prefix) for f in fields(value)}}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"case inputs: cannot store a {type(value).__name__}")


def decode(data, arrays) -> object:
    """The Python value :func:`encode` stored (``arrays``: the npz, or any mapping of its keys)."""
    if not isinstance(data, dict):
        return data
    if "array" in data:
        return as_recorded(np.asarray(arrays[data["array"]]), data["dtype"])
    if "scalar" in data:
        return np.dtype(data["dtype"]).type(data["scalar"])
    if "dict" in data:
        return {k: decode(v, arrays) for k, v in data["dict"].items()}
    if "list" in data:
        return [decode(v, arrays) for v in data["list"]]
    if "tuple" in data:
        return tuple(decode(v, arrays) for v in data["tuple"])
    if "type" in data:
        return DATACLASSES[data["type"]](**{k: decode(v, arrays) for k, v in data["fields"].items()})
    raise ValueError(f"not an encoded case input: {sorted(data)}")
