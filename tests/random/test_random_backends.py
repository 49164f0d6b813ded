"""The compiled (torch.compile) backend and CUDA give the same bits as the eager CPU path.

Compiling the fused kernels takes tens of seconds on a 2-core CPU, so the CPU checks are slow;
the CUDA ones run wherever a GPU is present.
"""
from __future__ import annotations

import pytest
import torch

import eggroll_torch.random as jr
from conformance.tolerances import assert_same_bits
from eggroll_torch.random import compiled
from random_support import backend

SHAPES = [(1,), (37, 3), (4097,)]


def _keys(device: str) -> torch.Tensor:
    return jr.split(jr.fold_in(jr.key(123), 2**31 - 1), 5).to(device)


def _draws(device: str):
    keys = _keys(device)
    out = {}
    for shape in SHAPES:
        out[f"bits32 {shape}"] = jr.bits(keys, shape)
        out[f"bits8 {shape}"] = jr.bits(keys, shape, torch.uint8)
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            out[f"normal {dtype} {shape}"] = jr.normal(keys, shape, dtype)
        out[f"uniform {shape}"] = jr.uniform(keys, shape, torch.float32, -1.0, 2.0)
    return out


@pytest.fixture(scope="module")
def eager_cpu():
    with backend("eager"):
        return _draws("cpu")


@pytest.mark.slow
@pytest.mark.skipif(not compiled.available(torch.device("cpu")), reason="no C++ compiler for inductor")
def test_random_compiled_cpu_matches_eager(eager_cpu):
    with backend("compiled"):
        got = _draws("cpu")
    for name, expected in eager_cpu.items():
        assert_same_bits(got[name], expected, f"random.compiled_cpu {name}")


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["eager", "compiled"])
def test_random_cuda_matches_cpu(eager_cpu, name):
    with backend(name):
        got = _draws("cuda")
    for key, expected in eager_cpu.items():
        assert got[key].device.type == "cuda"
        assert_same_bits(got[key], expected, f"random.cuda_{name} {key}")


@pytest.mark.cuda
def test_random_cuda_population_normal_auto_backend(eager_cpu):
    """The auto backend compiles large CUDA draws; values must still equal the eager CPU ones."""
    keys = jr.fold_in(jr.key(0), torch.arange(4096))
    with backend("eager"):
        expected = jr.normal(keys[:64], (4096, 16))
    got = jr.normal(keys.cuda(), (4096, 16))
    assert_same_bits(got[:64], expected, "random.normal_float32 population on CUDA (auto)")
