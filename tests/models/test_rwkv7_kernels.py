"""RWKV-7's population forward with all of the models' Triton kernels routed in, under Triton's
CPU interpreter, against the same forward on the plain ops.

The kernel files check each kernel on its own inputs; this checks the wiring: that a real noised
population forward (per-member vectors, a second call carrying the state, resets) hands every
LayerNorm, token shift, recurrence input and readout to its kernel, with the tensors and layouts the
kernels were checked on, and that the logits and state come out as on the plain ops. On the GPU
``test_*_triton.py``'s CUDA tests do the same per kernel.
"""
from __future__ import annotations

from collections import Counter

import pytest
import torch

from conformance.tolerances import compare
from eggroll_torch.random.triton_support import triton_installed
from triton_interpreted import run_interpreted

# Calls per kernel in the two forward calls of test_wkv_triton.population_forward (2 layers):
# ln0, ln_out and the first layer's ln1 alone, the other LayerNorms (ln2 of both layers, ln1 of the
# second) with the residual add they read; the time and channel mixing's shifts; the recurrence's
# inputs and one readout a layer.
EXPECTED_CALLS = {"standardize": 2 * 3, "add_standardize": 2 * 3, "shift_lerps": 2 * 2 * 2, "wkv_inputs": 2 * 2,
                  "gated_readout": 2 * 2}


def interpreted_forward_checks() -> dict:
    """For float32 and bfloat16: the kernel calls of the routed forward and its results against
    the plain forward (run under ``TRITON_INTERPRET=1``, where the kernels take CPU tensors)."""
    from eggroll_torch.models import common, standardize_triton
    from eggroll_torch.models.llm import readout_triton, shift_triton, wkv_inputs_triton
    from test_wkv_triton import population_forward

    modules = {"standardize": standardize_triton, "add_standardize": standardize_triton, "shift_lerps": shift_triton,
               "wkv_inputs": wkv_inputs_triton, "gated_readout": readout_triton}
    results = {}
    for dtype in (torch.float32, torch.bfloat16):
        calls = Counter()
        originals = {name: getattr(module, name) for name, module in modules.items()}
        for name, module in modules.items():
            setattr(module, name, lambda *args, name=name: calls.update([name]) or originals[name](*args))
        plain_route = common._own_kernels
        common._own_kernels = lambda x: True
        try:
            fast = population_forward("ScanRWKV", dtype, "cpu")
        finally:
            common._own_kernels = plain_route
            for name, module in modules.items():
                setattr(module, name, originals[name])
        slow = population_forward("ScanRWKV", dtype, "cpu")
        ok, details = dict(calls) == EXPECTED_CALLS, [f"calls {dict(calls)}"]
        for name, got, expected in zip(("logits 1", "state 1", "logits 2", "state 2"), fast, slow):
            # bfloat16 bit for bit: the kernels' float32 sums do not change a rounded result here.
            result = compare(got, expected, "exact" if dtype == torch.bfloat16 else "recurrence")
            ok = ok and result.ok
            details.append(f"{result.message(name)} ({int((got != expected).sum())} of {got.numel()} differ)")
        results[str(dtype)] = {"ok": ok, "detail": "; ".join(details)}
    return results


@pytest.mark.skipif(not triton_installed(), reason="triton is not installed (it is optional); "
                                                   "`pip install triton` to check the kernels on the CPU")
def test_population_forward_on_the_kernels_matches_the_plain_ops_interpreted():
    """:func:`interpreted_forward_checks` in a fresh process under Triton's interpreter."""
    run_interpreted(__file__, "interpreted_forward_checks")
