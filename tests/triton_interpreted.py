"""Run a test module's checks in a fresh process under Triton's CPU interpreter.

The interpreter is chosen when a kernel is first compiled, so the checks cannot run in the
pytest process; each returns ``{case: {"ok": bool, "detail": str}}`` as JSON. The interpreter has
no libdevice: the process hands it numpy's functions in its place (:data:`LIBDEVICE`), so the
kernels that call libdevice run there too, their transcendentals correctly rounded rather than
libdevice's own (which only a GPU run checks).
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
    script = (f"import json, triton_interpreted; triton_interpreted.numpy_libdevice(); "
              f"triton_interpreted.scalar_index(); import {module} as t; "
              f"print(json.dumps(t.{function}()))")
    done = subprocess.run([sys.executable, "-c", script],
                          capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    failed = {case: result["detail"] for case, result in results.items() if not result["ok"]}
    assert results and not failed, failed
    return results


# The libdevice functions the kernels call: symbol -> the name of both its Python wrapper in
# triton.language.extra.cuda.libdevice and its numpy stand-in (evaluated in float64, rounded to float32).
LIBDEVICE = {"__nv_expf": "exp", "__nv_log1pf": "log1p"}


def numpy_libdevice() -> None:
    """Lets Triton's interpreter, which neither hands libdevice's wrappers its semantic nor runs
    extern functions, run :data:`LIBDEVICE`."""
    import numpy as np
    from triton.language.extra.cuda import libdevice
    from triton.runtime import interpreter

    def extern_elementwise(self, lib_name, lib_path, symbol, args, ret_type, is_pure):
        if symbol not in LIBDEVICE:
            raise NotImplementedError(f"{symbol} has no numpy stand-in in tests/triton_interpreted.py")
        value = getattr(np, LIBDEVICE[symbol])(*(arg.data.astype(np.float64) for arg in args))
        return interpreter.TensorHandle(value.astype(np.float32), args[0].dtype.scalar)

    def with_semantic(wrapper):
        return lambda *args, **kwargs: wrapper(*args, _semantic=interpreter.interpreter_semantic,
                                               **{k: v for k, v in kwargs.items() if k != "_semantic"})

    interpreter.InterpreterBuilder.create_extern_elementwise = extern_elementwise
    for name in LIBDEVICE.values():
        setattr(libdevice, name, with_semantic(getattr(libdevice, name)))


def scalar_index() -> None:
    """Lets Triton 3.6's interpreter (the release on our GPU machines) run a loop bounded by a
    runtime scalar (``range(0, n, BLOCK)``): it converts the scalar with ``int()`` of a
    one-element array, which numpy refuses since that conversion's deprecation (NumPy 1.25)
    became an error (numpy 2.4 refuses it). Triton 3.9's interpreter converts the 0-d view, as
    this does."""
    from triton.runtime import interpreter

    patch = interpreter._patch_lang_tensor

    def patch_with_scalar_index(tensor, scope):
        patch(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(())))

    interpreter._patch_lang_tensor = patch_with_scalar_index


# libdevice's expf calls the hardware's ex2 in its flush-to-zero form whether or not subnormals are
# kept (its argument is range-reduced first); every other .ftz instruction comes from linking
# libdevice with flushing on, which torch's CUDA build does not do.
_FTZ_OF_LIBDEVICE = {"ex2.approx.ftz.f32"}


def assert_keeps_subnormals(ptx: str) -> None:
    """The PTX of a kernel calling libdevice was linked without flushing subnormals."""
    import re

    flushing = set(re.findall(r"\b[a-z0-9]+(?:\.[a-z0-9]+)*\.ftz[.a-z0-9]*", ptx)) - _FTZ_OF_LIBDEVICE
    assert not flushing, f"linked with libdevice's flush-to-zero paths: {sorted(flushing)}"


def assert_compiles_for_sm90_without_fma(kernel, signature: dict, constexprs: dict, options: dict, *,
                                         libdevice_calls: dict | None = None, block: int = 0) -> None:
    """``kernel`` compiled for an H100 (sm_90) with ``options`` (no GPU needed: Triton ships
    ptxas) has no fused multiply-add of its own in its PTX: each product is rounded before the
    sum or difference that follows it, as torch's separate ops round it.

    A kernel that calls libdevice (``libdevice_calls``: ``{"exp": n, "log1p": m}`` calls on
    ``block``-element tensors) carries the fused multiply-adds of those functions, which
    libdevice writes as such (as in torch's CUDA build): its PTX must hold exactly as many as a
    kernel making only those calls on as many elements per thread."""
    import re

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    def fma_count(kernel, signature, constexprs):
        source = ASTSource(kernel, {**signature, **{name: "constexpr" for name in constexprs}}, constexprs=constexprs)
        compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4, **options})
        assert compiled.asm["cubin"]
        if libdevice_calls:
            assert_keeps_subnormals(compiled.asm["ptx"])
        return len(re.findall(r"\bfma\.rn", compiled.asm["ptx"]))

    expected = 0
    if libdevice_calls:
        from libdevice_calls_triton import libdevice_calls as calls_kernel

        counts = {"EXP": libdevice_calls.get("exp", 0), "LOG1P": libdevice_calls.get("log1p", 0), "BLOCK": block}
        expected = fma_count(calls_kernel, {"x_ptr": "*fp32", "out_ptr": "*fp32"}, counts)
        assert expected > 0
    assert fma_count(kernel, signature, constexprs) == expected


def every_bfloat16():
    """All 65,536 bfloat16 bit patterns (NaNs and infinities included) as a bfloat16 tensor."""
    import torch

    return torch.arange(-2 ** 15, 2 ** 15, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)


def exact_bfloat16_checks(compare_case, cases) -> dict:
    """``{case dtype: {"ok", "detail"}}`` of ``compare_case(case, dtype, "cpu", exact_bfloat16=True)``
    for every case in float32 and bfloat16 (a kernel file's :func:`interpreted_checks`)."""
    import torch

    return {f"{case} {dtype}": dict(zip(("ok", "detail"), compare_case(case, dtype, "cpu", exact_bfloat16=True)))
            for dtype in (torch.float32, torch.bfloat16) for case in cases}
