"""The C (CPU) and Triton (CUDA) kernels of eggroll_torch.random.normal (and of the Threefry hash
under every key derivation) give the eager bits.

Their float32 values are computed, not looked up, so they are checked on every one of the 2**23
mantissas against the numpy emulation (which test_random_exhaustive checks against JAX) and, on
CUDA, against the tables of both variants; draws are checked against the eager torch path for
every dtype, batch shapes, row boundaries and the thread split.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import eggroll_torch.random as jr
from conformance.tolerances import assert_same_bits
from eggroll_torch.random import native, xla_cpu_f32
from eggroll_torch.random.exact_numpy import F32, add32, mul32
from eggroll_torch.random.gpu_variant import log1p_libdevice
from eggroll_torch.random.normal_tables import normal_inputs, normal_table, normal_values
from eggroll_torch.random.triton_support import triton_usable
from random_support import backend

NO_COMPILER = pytest.mark.skipif(not native.available(), reason="no C compiler here (cc or $CC): the C kernel "
                                                                "cannot be built and normal uses torch ops")
CUDA_TRITON = pytest.mark.skipif(not (torch.cuda.is_available() and triton_usable("cuda")),
                                 reason="triton is not installed or cannot build for this CUDA device")
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def _cases():
    for dtype in DTYPES:
        for variant in (("cpu", "gpu") if dtype == torch.float32 else ("cpu",)):
            yield pytest.param(dtype, variant, id=f"{str(dtype)[6:]}-{variant}")


def _draw_both(keys, shape, dtype, variant):
    # Eager on the keys' own device: a CUDA device's "gpu" table takes its tail roots from that
    # device (test_gpu_variant), and eager CUDA equals eager CPU elsewhere (test_random_backends).
    with backend("eager"):
        expected = jr.normal(keys, shape, dtype, variant=variant)
    with backend("kernel"):
        got = jr.normal(keys, shape, dtype, variant=variant)
    return got, expected


def test_random_kernel_table_branches():
    """The predicates with which the CUDA kernels leave their computed branch for the table
    (triton_normal._table_where) select exactly the values that branch does not cover."""
    u = normal_inputs(torch.arange(1 << 23, dtype=torch.int32), torch.float32).numpy()
    x = mul32(u, -u)
    # "gpu": the kernel tests t = w - 2.5 >= 2.5 where XLA:GPU's erf_inv tests w >= 5.
    w = -log1p_libdevice(x)
    np.testing.assert_array_equal(add32(w, F32(-2.5)) >= F32(2.5), w >= F32(5.0))
    # "cpu": the kernel tests x <= -0.4142 (0xBED413CD) for XLA:CPU's log(1 + x) branch, which
    # must contain erf_inv's w >= 5 tail, since the kernel computes only the rational branch.
    to_table = x <= np.array(0xBED413CD, dtype=np.uint32).view(np.float32)
    np.testing.assert_array_equal(to_table, ~xla_cpu_f32.log1p_rational_branch(x))
    tail = -xla_cpu_f32.log1p_f32(x) >= F32(5.0)
    assert tail.any() and not (tail & ~to_table).any(), "erf_inv's tail outside the table region"


@NO_COMPILER
def test_random_kernel_cpu_float32_every_mantissa():
    every = torch.arange(1 << 23, dtype=torch.int32)
    assert_same_bits(native.normal_f32_mantissas(0, 1 << 23), normal_values(every, torch.float32),
                     "random.kernel_cpu_float32: all 2**23 mantissas against the numpy emulation")


@NO_COMPILER
@pytest.mark.parametrize("dtype, variant", list(_cases()))
@pytest.mark.parametrize("batch, shape", [((5,), (1,)), ((3, 2), (37, 3)), ((2,), (4097,)), ((40,), (64, 33))],
                         ids=["tiny", "batched", "odd", "threaded"])
def test_random_kernel_cpu_matches_eager(dtype, variant, batch, shape):
    keys = jr.split(jr.fold_in(jr.key(11), 2**31 - 1), batch)
    got, expected = _draw_both(keys, shape, dtype, variant)
    assert got.shape == batch + shape and got.dtype == dtype
    assert_same_bits(got, expected, f"random.kernel_cpu {dtype} {variant} {batch}+{shape}")


@NO_COMPILER
def test_random_kernel_cpu_empty_draw():
    with backend("kernel"):
        out = jr.normal(jr.split(jr.key(0), 3), (0, 4))
    assert out.shape == (3, 0, 4)


def test_random_kernel_backend_rejects_the_other_layout():
    with backend("kernel"), pytest.raises(RuntimeError, match=r"set_backend\('auto'\)"):
        jr.normal(jr.key(0), (4,), partitionable=False)


@pytest.mark.cuda
@CUDA_TRITON
@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_random_kernel_cuda_float32_every_mantissa(variant):
    from eggroll_torch.random.triton_normal import MODE_TABLE, finishing, normal_f32_mantissas

    table = normal_table(torch.float32, "cuda", variant)
    assert_same_bits(normal_f32_mantissas(0, 1 << 23, variant, "cuda"), table,
                     f"random.kernel_cuda_float32 ({variant} variant): all 2**23 mantissas against the table")
    assert finishing(torch.float32, variant, "cuda").mode != MODE_TABLE, "the first-use check fell back to the table"


@pytest.mark.cuda
@CUDA_TRITON
@pytest.mark.parametrize("dtype, variant", list(_cases()))
@pytest.mark.parametrize("batch, shape", [((5,), (1,)), ((3, 2), (37, 3)), ((2,), (4097,)), ((70000,), (3,))],
                         ids=["tiny", "batched", "odd", "many_keys"])
def test_random_kernel_cuda_matches_eager(dtype, variant, batch, shape):
    keys = jr.split(jr.fold_in(jr.key(11), 2**31 - 1), batch).cuda()
    got, expected = _draw_both(keys, shape, dtype, variant)
    assert got.device.type == "cuda" and got.shape == batch + shape
    assert_same_bits(got, expected, f"random.kernel_cuda {dtype} {variant} {batch}+{shape}")


def _hash_both(device):
    """The hash and the key derivations built on it (fold_in, split), broadcasting key and data
    batches, through the kernels and through torch ops; pairs (got, expected, what)."""
    from eggroll_torch.random.threefry import threefry2x32

    gen = torch.Generator().manual_seed(5)
    words = [torch.randint(-2**31, 2**31 - 1, shape, dtype=torch.int32, generator=gen).to(device)
             for shape in ((3, 1), (1, 70000), (70000,), (3, 70000))]
    keys = jr.split(jr.key(7), (4, 1)).to(device)
    data = torch.arange(-3, 300, dtype=torch.int64, device=device)
    pairs = []
    for name in ("kernel", "eager"):
        with backend(name):
            pairs.append((*threefry2x32(*words), jr.fold_in(keys, data), jr.split(keys[0, 0], 9),
                          threefry2x32(*(w[:, :0] for w in words[:2]), words[2][:0], words[3][:, :0])[0]))
    return [(got, expected, what) for got, expected, what in
            zip(*pairs, ("y0", "y1", "fold_in", "split", "empty"))]


@NO_COMPILER
def test_random_kernel_cpu_hash_matches_eager():
    for got, expected, what in _hash_both("cpu"):
        assert got.device.type == "cpu"
        assert_same_bits(got, expected, f"random.kernel_cpu hash: {what}")


@pytest.mark.cuda
@CUDA_TRITON
def test_random_kernel_cuda_hash_matches_eager():
    for got, expected, what in _hash_both("cuda"):
        assert got.device.type == "cuda"
        assert_same_bits(got, expected, f"random.kernel_cuda hash: {what}")


def test_random_kernel_cpu_without_compiler_falls_back_to_torch_ops(tmp_path):
    """No C compiler: ``native.load`` gives None, ``auto`` draws with torch ops (same bits) and
    ``kernel`` says what is missing. Run in a fresh process, as the library is loaded once."""
    import json
    import os
    import subprocess
    import sys

    script = (
        "import json, torch, eggroll_torch.random as jr\n"
        "from eggroll_torch.random import native\n"
        "keys = jr.split(jr.key(5), 3)\n"
        "out = {'available': native.available(), 'bits': jr.normal(keys, (7,)).view(torch.int32).tolist()}\n"
        "jr.set_backend('kernel')\n"
        "try:\n"
        "    jr.normal(keys, (7,))\n"
        "except RuntimeError as error:\n"
        "    out['error'] = str(error)\n"
        "print(json.dumps(out))\n"
    )
    env = {**os.environ, "CC": str(tmp_path / "no-such-compiler"), "EGGROLL_TORCH_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["available"] is False
    with backend("eager"):
        expected = jr.normal(jr.split(jr.key(5), 3), (7,)).view(torch.int32).tolist()
    assert got["bits"] == expected
    assert "C compiler" in got["error"] and "set_backend('auto')" in got["error"]
