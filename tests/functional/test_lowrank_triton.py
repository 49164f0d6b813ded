"""The Triton kernel that adds a population's low-rank term to the shared product
(eggroll_torch.noiser.lowrank_triton) rounds as the reference does.

Expected values are computed in float64 from the same rounded inputs: the rank-``r`` product
rounded to the dtype, then the sum with the shared product rounded again. Rank 1 must agree bit
for bit (its product is exact in float32); larger ranks sum their terms in float32, in an order
a matmul may not share, so they are held to that summation's error bound plus one unit in the
last place (where the summation moves the product across a rounding boundary).
The projecting kernel also forms ``left = x @ first``; its cases draw ``x`` and ``first`` from
multiples of 1/16 up to 4, whose products and sums are exact in float32 in any order but need
more bits than a half-precision dtype holds, so the expected ``left`` is that exact value
rounded to the dtype, as a matmul returns it.
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
# (out shape, inner size k, rank) for the projecting kernel: k and the columns below, at and
# across its blocks (256 each), rows across its blocks of 4.
PROJECTED_CASES = [((4, 1, 48), 40, 1), ((3, 1, 130), 300, 1), ((2, 37, 64), 70, 2), ((6, 5, 7, 33), 16, 2),
                   ((4, 3, 200), 9, 4), ((5, 1, 20), 256, 1), ((3, 2, 300), 520, 2), ((2, 1, 256), 257, 1)]
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


def _verdict(got, expected, bound, rank, name) -> dict:
    """Rank 1: bit for bit; larger ranks: within one unit in the last place plus ``bound``."""
    error = (got.double() - expected.double()).abs()
    if rank == 1:
        allowed = torch.zeros_like(error)
    else:
        ulp = (torch.nextafter(expected.abs(), torch.tensor(float("inf"), dtype=expected.dtype, device=got.device))
               - expected.abs()).double()
        allowed = ulp + bound
    over = error > allowed
    worst = int(torch.argmax(error - allowed))
    return {"ok": not bool(over.any()),
            "detail": f"{name}: {int(over.sum())} of {error.numel()} over the bound, "
                      f"{int((error > 0).sum())} differ; worst flat index {worst}: error "
                      f"{float(error.flatten()[worst]):.3g} allowed {float(allowed.flatten()[worst]):.3g}"}


def check_case(shape, rank, dtype_name, device) -> dict:
    """Run :func:`add_member_product_` on one case: ``{"ok", "detail"}``."""
    from eggroll_torch.noiser import lowrank_triton

    out, left, right = _operands(shape, rank, DTYPES[dtype_name], device)
    expected, bound = _expected(out, left, right)
    assert lowrank_triton.supports(out, left, right)
    got = lowrank_triton.add_member_product_(out.clone(), left, right)
    return _verdict(got, expected, bound, rank, f"{shape} r={rank} {dtype_name}")


def _sixteenths(gen, *shape):
    return torch.randint(-64, 65, shape, generator=gen).double() / 16


def check_projected_case(shape, inner, rank, dtype_name, device) -> dict:
    """Run :func:`add_projected_product_` on one case: ``{"ok", "detail"}``."""
    from eggroll_torch.noiser import lowrank_triton

    dtype = DTYPES[dtype_name]
    out, _, right = _operands(shape, rank, dtype, device)
    gen = torch.Generator().manual_seed(sum(shape) * 7 + inner)
    x = _sixteenths(gen, *shape[:-1], inner).to(dtype).to(device)
    first = _sixteenths(gen, shape[0], inner, rank).to(dtype).to(device)
    rows = x.double().reshape(shape[0], -1, inner)
    left = torch.bmm(rows, first.double()).reshape(*shape[:-1], rank).to(dtype)
    expected, bound = _expected(out, left, right)
    assert lowrank_triton.supports_projected(out, x, first, right)
    got = lowrank_triton.add_projected_product_(out.clone(), x, first, right)
    return _verdict(got, expected, bound, rank, f"projected {shape} k={inner} r={rank} {dtype_name}")


def check_empty(device) -> dict:
    """Both kernels on an ``out`` with no columns: ``out`` comes back, nothing launched."""
    from eggroll_torch.noiser import lowrank_triton

    out, right = torch.zeros(2, 3, 0, device=device), torch.zeros(2, 1, 0, device=device)
    left, x, first = (torch.zeros(shape, device=device) for shape in ((2, 3, 1), (2, 3, 5), (2, 5, 1)))
    got = (lowrank_triton.add_member_product_(out, left, right),
           lowrank_triton.add_projected_product_(out, x, first, right))
    return {"ok": all(t is out for t in got), "detail": "an empty out is not returned as it was given"}


def interpreted_checks() -> dict:
    """Every case in float32 and float16 on the CPU (run under ``TRITON_INTERPRET=1``)."""
    plain = {f"{shape} {rank} {dtype}": check_case(shape, rank, dtype, "cpu")
             for shape, rank in CASES for dtype in ("float32", "float16")}
    projected = {f"projected {shape} {inner} {rank} {dtype}": check_projected_case(shape, inner, rank, dtype, "cpu")
                 for shape, inner, rank in PROJECTED_CASES for dtype in ("float32", "float16")}
    return plain | projected | {"no columns": check_empty("cpu")}


@pytest.mark.cuda
@NEEDS_KERNEL
@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("shape, rank", CASES)
def test_lowrank_triton_rounds_as_reference(shape, rank, dtype):
    result = check_case(shape, rank, dtype, "cuda")
    assert result["ok"], result["detail"]


@pytest.mark.cuda
@NEEDS_KERNEL
@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("shape, inner, rank", PROJECTED_CASES)
def test_lowrank_triton_projected_rounds_as_reference(shape, inner, rank, dtype):
    result = check_projected_case(shape, inner, rank, dtype, "cuda")
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


@pytest.mark.cuda
@NEEDS_KERNEL
def test_lowrank_triton_projects_few_rows_only(monkeypatch):
    """A token step's few rows take the projecting kernel; a forward over many tokens forms
    ``x @ first`` as a batched matmul and adds it with the plain kernel."""
    from eggroll_torch.noiser import lowrank_triton

    calls = []
    for name in ("add_member_product_", "add_projected_product_"):
        original = getattr(lowrank_triton, name)
        monkeypatch.setattr(lowrank_triton, name, lambda *a, _n=name, _f=original: calls.append(_n) or _f(*a))
    for tokens in (1, 64):
        out, _, right = _operands((128, tokens, 96), 1, torch.bfloat16, "cuda")
        x = torch.randn(128, tokens, 80, device="cuda", dtype=torch.bfloat16)
        first = torch.randn(128, 80, 1, device="cuda", dtype=torch.bfloat16)
        _forward.add_low_rank_product(out, x, first, right)
    assert calls == ["add_projected_product_", "add_member_product_"]


@pytest.mark.cuda
@NEEDS_KERNEL
def test_compiled_forward_leaves_the_products_to_inductor(monkeypatch):
    """Traced by torch.compile, the member products are the plain ops (which inductor fuses into
    the kernels around them): neither kernel is called and the result is the plain path's."""
    from eggroll_torch.noiser import lowrank_triton

    calls = []
    for name in ("add_member_product_", "add_projected_product_"):
        original = getattr(lowrank_triton, name)
        monkeypatch.setattr(lowrank_triton, name, lambda *a, _n=name, _f=original: calls.append(_n) or _f(*a))
    out, _, right = _operands((128, 1, 96), 1, torch.bfloat16, "cuda")
    x = torch.randn(128, 1, 80, device="cuda", dtype=torch.bfloat16)
    first = torch.randn(128, 80, 1, device="cuda", dtype=torch.bfloat16)
    compiled = torch.compile(_forward.add_low_rank_product, backend="eager", fullgraph=True)
    traced = compiled(out.clone(), x, first, right)
    assert calls == []
    monkeypatch.setattr(_forward, "triton_usable", lambda device: False)
    torch.testing.assert_close(traced, _forward.add_low_rank_product(out.clone(), x, first, right), rtol=0, atol=0)
