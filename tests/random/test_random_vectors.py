"""eggroll_torch.random against golden vectors recorded from jax 0.10.2 on XLA:CPU.

These need no JAX, so they also check torch on CUDA (where jax 0.10.2's CPU numbers are the
reference) and any host where JAX is absent. ``python -m conformance vectors`` records the file
(``conformance.prng_vectors``).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import eggroll_torch.random as jr
from conformance.prng_vectors import path_for
from conformance.tolerances import assert_same_bits


VECTORS = path_for("0.10.2")
_DATA = np.load(VECTORS)
HEADER = json.loads(str(_DATA["header"]))
CASES = {case["name"]: case for case in HEADER["cases"]}

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.cuda),
]


def _torch_dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


def _run(case, device: str) -> torch.Tensor:
    fn = case["fn"]
    if fn == "key":
        return torch.stack([jr.key(s, device=device, x64=case["x64"]) for s in case["seeds"]])
    if fn == "fold_in_chain":
        key, chain = jr.key(case["seed"], device=device), []
        for d in case["data"]:
            key = jr.fold_in(key, d)
            chain.append(key)
        return torch.stack(chain)
    if fn == "fold_in":
        key = jr.fold_in(jr.key(case["seed"], device=device), case["epoch"])
        return jr.fold_in(key, torch.tensor(case["threads"], dtype=torch.int64, device=device))
    keys = jr.wrap_key_data(_DATA[f"{case['name']}.keys"], device=device)
    part = case["partitionable"]
    if fn == "split":
        return jr.split(keys, tuple(case["num"]), partitionable=part)
    shape, dtype = tuple(case["shape"]), _torch_dtype(case["dtype"])
    if fn == "bits":
        return jr.bits(keys, shape, dtype, partitionable=part)
    if fn == "normal":
        return jr.normal(keys, shape, dtype, partitionable=part)
    return jr.uniform(keys, shape, dtype, case["minval"], case["maxval"], partitionable=part)


def test_random_vectors_header_names_versions():
    assert HEADER["jax"] == "0.10.2" and HEADER["jaxlib"] == "0.10.2"
    assert HEADER["platform"] == "cpu"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_random_vectors(name, device):
    case = CASES[name]
    got = _run(case, device)
    assert got.device.type == device
    expected = _DATA[f"{name}.out"]
    if got.is_floating_point():
        # The file holds float draws as their bit patterns: numpy has no bfloat16.
        expected = torch.from_numpy(expected.view(f"i{expected.dtype.itemsize}")).view(got.dtype)
    assert_same_bits(got, expected, f"random.{case['fn']} vector {name} on {device}")
