"""The Triton kernels (eggroll_torch.fast's noise, eggroll_torch.nn's member LayerNorm), run on the CPU
by Triton's interpreter.

noise: the fused threefry + normal kernel gives eggroll_torch.random's bits, and so does
eggroll_torch.random's own rows kernel. member LayerNorm: eggroll_torch.nn's population
LayerNorm kernel gives each member's own F.layer_norm.
The checks run in a subprocess (see triton_interpreter_checks.py) because the interpreter is
chosen when the kernels are first imported.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from eggroll_torch.random.triton_support import triton_installed

pytestmark = pytest.mark.skipif(not triton_installed(), reason="triton is not installed (it is optional); "
                                                               "`pip install triton` to check the kernels")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def results():
    env = {**os.environ, "TRITON_INTERPRET": "1",
           "PYTHONPATH": os.pathsep.join([ROOT, os.path.dirname(os.path.abspath(__file__)),
                                          os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "triton_interpreter_checks.py")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _assert(results, prefix):
    checks = {k: v for k, v in results.items() if k.startswith(prefix)}
    assert checks, f"no {prefix} checks ran"
    failed = {k: v["detail"] for k, v in checks.items() if not v["ok"]}
    assert not failed, failed


def test_noise_triton_kernel_is_bit_identical(results):
    _assert(results, "normals_")


def test_random_rows_triton_kernel_is_bit_identical(results):
    _assert(results, "rows_")


def test_member_layer_norm_triton_kernel_matches_per_member_layer_norm(results):
    _assert(results, "member_ln_")
