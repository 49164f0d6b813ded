"""The Triton kernel that adds a population's low-rank term to the shared product
(eggroll_torch.noiser.lowrank_triton) rounds as the reference does.

Expected values are computed in float64 from the same rounded inputs: the rank-``r`` product
rounded to the dtype, then the sum with the shared product rounded again. Rank 1 must agree bit
for bit (its product is exact in float32); larger ranks sum their terms in float32, in an order
a matmul may not share, so they are held to that summation's error bound plus one unit in the
last place (where the summation moves the product across a rounding boundary).
On CUDA the kernel runs where the functional layer dispatches to it; without a GPU Triton's
interpreter runs the same cases on the CPU in a fresh process (the interpreter is chosen when
the kernel is first compiled).
"""
from __future__ import annotations


import pytest
import torch

from eggroll_torch.noiser import _forward
from eggroll_torch.random.triton_support import triton_installed, triton_usable
from triton_interpreted import run_interpreted

NEEDS_KERNEL = pytest.mark.skipif(not (torch.cuda.is_available() and triton_usable("cuda")),
                                  reason="the kernel needs CUDA and triton")
# (out shape, rank): member axis first; tokens per member 1 (generation), 37, 256.
CASES = [((4, 37, 48), 1), ((3, 1, 130), 1), ((2, 256, 64), 1), ((6, 5, 7, 33), 2), ((4, 33, 200), 4),
         ((2, 3, 16), 16)]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _operands(shape, rank, dtype, device):
    gen = torch.Generator().manual_seed(sum(shape) * 31 + rank)
    out = torch.randn(shape, generator=gen).to(dtype)
    left = (torch.randn(*shape[:-1], rank, generator=gen) * 0.05).to(dtype)
    right = torch.randn(shape[0], shape[-1], rank, generator=gen).to(dtype).transpose(1, 2)
    return out.to(device), left.to(device), right.to(device)


def _expected(out, left, right):
    """The reference's rounding in float64 from the rounded inputs, and the float32 summation's
    error bound on the product: ``(expected, bound)``."""
    rows = left.double().reshape(left.shape[0], -1, left.shape[-1])
    product = torch.bmm(rows, right.double()).reshape(out.shape)
    magnitude = torch.bmm(rows.abs(), right.double().abs()).reshape(out.shape)
    bound = 2 * left.shape[-1] * 2.0**-24 * magnitude
    return (out.double() + product.to(out.dtype).double()).to(out.dtype), bound


def check_case(shape, rank, dtype_name, device) -> dict:
    """Run the kernel on one case: ``{"ok", "detail"}``. Rank 1: bit for bit; larger ranks:
    within one unit in the last place plus the float32 summation's bound."""
    from eggroll_torch.noiser import lowrank_triton

    out, left, right = _operands(shape, rank, DTYPES[dtype_name], device)
    expected, bound = _expected(out, left, right)
    assert lowrank_triton.supports(out, left, right)
    got = lowrank_triton.add_member_product_(out.clone(), left, right)
    error = (got.double() - expected.double()).abs()
    if rank == 1:
        allowed = torch.zeros_like(error)
    else:
        ulp = (torch.nextafter(expected.abs(), torch.tensor(float("inf"), dtype=expected.dtype, device=device))
               - expected.abs()).double()
        allowed = ulp + bound
    over = error > allowed
    worst = int(torch.argmax(error - allowed))
    return {"ok": not bool(over.any()),
            "detail": f"{shape} r={rank} {dtype_name}: {int(over.sum())} of {error.numel()} over the bound, "
                      f"{int((error > 0).sum())} differ; worst flat index {worst}: error "
                      f"{float(error.flatten()[worst]):.3g} allowed {float(allowed.flatten()[worst]):.3g}"}


def interpreted_checks() -> dict:
    """Every case in float32 and float16 on the CPU (run under ``TRITON_INTERPRET=1``)."""
    return {f"{shape} {rank} {dtype}": check_case(shape, rank, dtype, "cpu")
            for shape, rank in CASES for dtype in ("float32", "float16")}


@pytest.mark.cuda
@NEEDS_KERNEL
@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("shape, rank", CASES)
def test_lowrank_triton_rounds_as_reference(shape, rank, dtype):
    result = check_case(shape, rank, dtype, "cuda")
    assert result["ok"], result["detail"]


@pytest.mark.cuda
@NEEDS_KERNEL
def test_lowrank_triton_is_what_the_population_forward_runs(monkeypatch):
    """The functional layer's population product dispatches to the kernel on CUDA and falls
    back to the reference's matmul and addition where the kernel does not apply."""
    from eggroll_torch.noiser import lowrank_triton

    calls = []
    original = lowrank_triton.add_member_product_
    monkeypatch.setattr(lowrank_triton, "add_member_product_", lambda *a: calls.append(1) or original(*a))
    out, left, right = _operands((4, 9, 32), 2, torch.bfloat16, "cuda")
    _forward.add_member_product(out.clone(), left, right)
    assert calls == [1]
    _forward.add_member_product(out.clone(), left.float(), right)
    assert calls == [1], "mixed dtypes use the matmul"


@pytest.mark.skipif(not triton_installed(), reason="triton is not installed (it is optional); "
                                                   "`pip install triton` to check the kernel on the CPU")
def test_lowrank_triton_interpreted():
    """:func:`interpreted_checks` in a fresh process under Triton's interpreter."""
    run_interpreted(__file__, "interpreted_checks")
