"""Run a test module's checks in a fresh process under Triton's CPU interpreter.

The interpreter is chosen when a kernel is first compiled, so the checks cannot run in the
pytest process; each returns ``{case: {"ok": bool, "detail": str}}`` as JSON.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys


def run_interpreted(test_file: str, function: str, timeout: int = 600) -> dict:
    """``function()`` of the module ``test_file`` (a path beside which it is importable) under
    ``TRITON_INTERPRET=1``; returns its result and asserts that every case is ok."""
    here = os.path.dirname(os.path.abspath(test_file))
    tests = os.path.dirname(os.path.abspath(__file__))
    module = os.path.splitext(os.path.basename(test_file))[0]
    env = {**os.environ, "TRITON_INTERPRET": "1",
           "PYTHONPATH": os.pathsep.join([os.path.dirname(tests), tests, here, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", f"import json, {module} as t; print(json.dumps(t.{function}()))"],
                          capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    failed = {case: result["detail"] for case, result in results.items() if not result["ok"]}
    assert results and not failed, failed
    return results


def assert_compiles_for_sm90_without_fma(kernel, signature: dict, constexprs: dict, options: dict) -> None:
    """``kernel`` compiled for an H100 (sm_90) with ``options`` (no GPU needed: Triton ships
    ptxas) has no fused multiply-add in its PTX: each product is rounded before the sum or
    difference that follows it, as torch's separate ops round it."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    source = ASTSource(kernel, {**signature, **{name: "constexpr" for name in constexprs}}, constexprs=constexprs)
    compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4, **options})
    assert "fma.rn" not in compiled.asm["ptx"]
    assert compiled.asm["cubin"]


def exact_bfloat16_checks(compare_case, cases) -> dict:
    """``{case dtype: {"ok", "detail"}}`` of ``compare_case(case, dtype, "cpu", exact_bfloat16=True)``
    for every case in float32 and bfloat16 (a kernel file's :func:`interpreted_checks`)."""
    import torch

    return {f"{case} {dtype}": dict(zip(("ok", "detail"), compare_case(case, dtype, "cpu", exact_bfloat16=True)))
            for dtype in (torch.float32, torch.bfloat16) for case in cases}
