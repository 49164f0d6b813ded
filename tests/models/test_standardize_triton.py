"""The Triton standardisation (eggroll_torch.models.standardize_triton) against ``layer_norm``'s ops.

The kernel repeats :func:`eggroll_torch.models.common.layer_norm`'s roundings op for op; only the
order of its two float32 sums differs, so it agrees with the plain ops under the ``reduction``
tolerance (bfloat16: 2 ULP; in practice bit for bit, the float32 sums' last bits rarely survive
the rounding to bfloat16). On CUDA the models reach it through ``layer_norm`` and RWKV-7's
GroupNorm. ``add_standardize`` adds a residual first and returns the sum too (exactly torch's
``x + residual``). Without a GPU, Triton's interpreter runs the kernel on the CPU in a
subprocess; the kernel treats bfloat16 as 16-bit patterns and float32 arithmetic, so the
interpreter checks bfloat16 too.
"""
from __future__ import annotations

import pytest
import torch

from conformance.tolerances import compare
from eggroll_torch.models import common
from eggroll_torch.random.triton_support import triton_installed, triton_usable
from triton_interpreted import assert_compiles_for_sm90_without_fma, run_interpreted

NEEDS_KERNEL = pytest.mark.skipif(not (torch.cuda.is_available() and triton_usable("cuda")),
                                  reason="the standardisation kernel needs CUDA and triton")

# (shape, eps): one LayerNorm row of RWKV-7 0.1B, GroupNorm heads (many short rows), a row that is
# not a power of two, one element, leading axes, the widest rows, RWKV-7's ln_x epsilon.
SHAPES = [((3, 768), 1e-5), ((37, 64), 64e-5), ((5, 7), 1e-5), ((1, 1), 1e-5), ((2, 3, 100), 1e-5),
          ((2, 16384), 1e-5)]


def _inputs(shape, dtype, device, seed=0):
    """Offset, scaled normals with one constant row (zero variance) when there are several rows."""
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3 + 1.5
    if x.numel() > shape[-1]:
        x.reshape(-1, shape[-1])[0] = 0.25
    return x.to(device=device, dtype=dtype)


def _affine(shape, dtype, device, per_member: bool):
    """A scale and a shift, shared ``(C,)`` or one per leading index (``(*lead, 1, C)``)."""
    gen = torch.Generator().manual_seed(1)
    param_shape = (*shape[:-2], 1, shape[-1]) if per_member else (shape[-1],)
    weight = torch.randn(*param_shape, generator=gen) * 0.5 + 1
    bias = torch.randn(*param_shape, generator=gen) * 0.2
    return weight.to(device=device, dtype=dtype), bias.to(device=device, dtype=dtype)


def compare_shape(shape, eps, dtype, device, affine=None, exact_bfloat16=False):
    """The kernel's result against ``layer_norm``'s plain ops on the same device; with ``affine``
    (``"shared"`` or ``"member"``) also scaled and shifted as RWKV-7's LayerNorm does. bfloat16
    bit for bit with ``exact_bfloat16``, else within the ``reduction`` tolerance."""
    from eggroll_torch.models.standardize_triton import standardize

    x = _inputs(shape, dtype, device)
    expected = common._standardize_ops(x, eps)
    if affine is None:
        got = standardize(x, eps)
    else:
        weight, bias = _affine(shape, dtype, device, affine == "member")
        expected = expected * weight + bias
        got = standardize(x, eps, weight, bias)
    assert got.shape == x.shape and got.dtype == x.dtype
    return compare(got, expected, "exact" if exact_bfloat16 and dtype == torch.bfloat16 else "reduction")


def compare_residual(shape, eps, dtype, device, affine=None, exact_bfloat16=False):
    """``add_standardize(x, residual)`` against ``x + residual`` (exactly, bits included) and the
    plain ops' LayerNorm of that sum (as :func:`compare_shape`); a list of comparisons."""
    from eggroll_torch.models.standardize_triton import add_standardize

    x = _inputs(shape, dtype, device)
    # Scaled by a power of two: the constant row stays constant and exactly summable after the add.
    residual = _inputs(shape, dtype, device, seed=3) * 0.5
    total = x + residual
    expected = common._standardize_ops(total, eps)
    weight, bias = _affine(shape, dtype, device, affine == "member") if affine else (None, None)
    if affine:
        expected = expected * weight + bias
    got_total, got = add_standardize(x, residual, eps, weight, bias)
    assert got.shape == got_total.shape == x.shape and got.dtype == got_total.dtype == x.dtype
    return [compare(got_total, total, "bits"),
            compare(got, expected, "exact" if exact_bfloat16 and dtype == torch.bfloat16 else "reduction")]


# Scaled and shifted: shared parameters, and per member over a (members, tokens, C) input.
AFFINE = [((37, 64), 1e-5, "shared"), ((2, 3, 100), 1e-5, "shared"), ((4, 3, 768), 1e-5, "member"),
          ((2, 1, 5), 1e-5, "member")]


# x + residual then LayerNorm: plain, scaled and shifted per member, a row not a power of two.
RESIDUAL = [((3, 768), 1e-5, None), ((4, 3, 768), 1e-5, "member"), ((2, 3, 100), 1e-5, "shared")]


def interpreted_checks() -> dict:
    """:data:`SHAPES` and :data:`AFFINE` in float32 and bfloat16 on the CPU (run under
    ``TRITON_INTERPRET=1``); bfloat16 bit for bit: the float32 sums' last bits do not survive the
    rounding on these inputs, and the tolerance would let a dropped rounding through."""
    results = {}
    for dtype in (torch.float32, torch.bfloat16):
        for shape, eps, affine in [(shape, eps, None) for shape, eps in SHAPES] + AFFINE:
            c = compare_shape(shape, eps, dtype, "cpu", affine, exact_bfloat16=True)
            results[f"{shape} {affine} {dtype}"] = {"ok": c.ok, "detail": c.message("standardize")}
        for shape, eps, affine in RESIDUAL:
            sums, normed = compare_residual(shape, eps, dtype, "cpu", affine, exact_bfloat16=True)
            results[f"residual {shape} {affine} {dtype}"] = {
                "ok": sums.ok and normed.ok, "detail": f"{sums.message('sum')}; {normed.message('standardize')}"}
    return results


@pytest.mark.skipif(not triton_installed(), reason="triton is not installed (it is optional); "
                                                   "`pip install triton` to check the kernel on the CPU")
def test_kernel_matches_layer_norm_ops_interpreted():
    """:func:`interpreted_checks` in a fresh process under Triton's interpreter."""
    run_interpreted(__file__, "interpreted_checks")


@pytest.mark.skipif(not triton_installed(), reason="triton is not installed (it is optional)")
def test_kernel_refuses_what_it_does_not_take():
    """float16, rows wider than 16384, empty inputs and inputs that want autograd stay on the plain
    ops, and a direct call with them says which inputs it takes."""
    from eggroll_torch.models.standardize_triton import add_standardize, standardize, supports, supports_residual

    assert supports_residual(torch.zeros(2, 8), torch.zeros(2, 8))
    assert not supports_residual(torch.zeros(2, 8), torch.zeros(1, 8))
    assert not supports_residual(torch.zeros(2, 8), torch.zeros(2, 8, dtype=torch.bfloat16))
    assert not supports_residual(torch.zeros(2, 8), torch.zeros(2, 8, requires_grad=True))
    with pytest.raises(ValueError, match="add_standardize takes"):
        add_standardize(torch.zeros(2, 8), torch.zeros(2, 9), 1e-5)
    assert supports(torch.zeros(2, 8))
    assert supports(torch.zeros(8, dtype=torch.bfloat16))
    assert not supports(torch.zeros(2, 8, dtype=torch.float16))
    assert not supports(torch.zeros(1, 16385))
    assert not supports(torch.zeros(0, 8))
    assert not supports(torch.zeros(2, 8, requires_grad=True))
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        standardize(torch.zeros(2, 8, dtype=torch.float16), 1e-5)


@pytest.mark.skipif(not triton_installed(), reason="triton is not installed (it is optional)")
@pytest.mark.parametrize("bf16", [True, False], ids=["bfloat16", "float32"])
def test_kernel_compiles_for_sm90_without_fused_multiply_adds(bf16):
    """Compiled for an H100 with the options it is launched with (no GPU needed: Triton ships
    ptxas), the kernel has no ``fma``: each product is rounded before the sum or difference that
    follows it, as torch's ops round it."""
    from eggroll_torch.models.standardize_triton import _OPTIONS, _standardize_kernel

    pointer = "*i16" if bf16 else "*fp32"
    signature = {**{name: pointer for name in ("x_ptr", "out_ptr", "weight_ptr", "bias_ptr", "residual_ptr",
                                               "sum_ptr")},
                 **{name: "i32" for name in ("n_rows", "C", "x_stride", "out_stride", "residual_stride",
                                             "rows_per_lead", "weight_stride_l", "bias_stride_l")},
                 "reciprocal": "fp32", "eps": "fp32"}
    assert_compiles_for_sm90_without_fma(_standardize_kernel, signature,
                                         {"IS_BF16": bf16, "AFFINE": True, "RESIDUAL": True, "ROWS": 4,
                                          "BLOCK": 1024}, _OPTIONS)


def test_layer_norm_keeps_the_plain_ops_off_cuda():
    """On the CPU ``layer_norm`` is the plain ops (the kernel is for CUDA only)."""
    x = _inputs((4, 32), torch.float32, "cpu")
    assert common._fused_standardize(x, 1e-5) is None
    assert torch.equal(common.layer_norm(x), common._standardize_ops(x, 1e-5))


@pytest.mark.cuda
@NEEDS_KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape,eps", SHAPES, ids=[str(s) for s, _ in SHAPES])
def test_kernel_matches_layer_norm_ops(shape, eps, dtype):
    result = compare_shape(shape, eps, dtype, "cuda")
    assert result.ok, result.message(f"{shape} {dtype}")


@pytest.mark.cuda
@NEEDS_KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape,eps,affine", RESIDUAL, ids=[str(s) for s, _, _ in RESIDUAL])
def test_residual_kernel_matches_add_and_layer_norm_ops(shape, eps, affine, dtype):
    for result in compare_residual(shape, eps, dtype, "cuda", affine):
        assert result.ok, result.message(f"{shape} {affine} {dtype}")


@pytest.mark.cuda
@NEEDS_KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_rwkv7_population_forward_runs_the_kernel(dtype, monkeypatch):
    """A noised RWKV-7 population forward normalises through the kernel (ln0, ln_out and two
    LayerNorms a layer, each with its per-member scale and shift; every one past the first layer's
    ln1 adding the residual it reads), and its logits and state agree with the same forward on
    the plain ops."""
    from eggroll_torch.models import standardize_triton
    from test_wkv_triton import assert_forwards_agree, population_forward

    calls = []
    for name in ("standardize", "add_standardize"):
        original = getattr(standardize_triton, name)
        monkeypatch.setattr(standardize_triton, name, lambda *args, name=name, original=original: calls.append(
            (name, len(args))) or original(*args))
    fast = population_forward("ScanRWKV", dtype, "cuda")
    # Per call: ln0, ln1 of layer 0, ln_out plain; ln2 of both layers and ln1 of layer 1 with the
    # residual. ln_x's GroupNorm goes through the readout kernel (readout_triton).
    plain, added = ("standardize", 4), ("add_standardize", 5)
    assert calls == [plain, plain, added, added, added, plain] * 2, \
        f"expected every LayerNorm of both calls on the kernel, got {calls}"
    monkeypatch.setattr(common, "triton_usable", lambda device: False)
    slow = population_forward("ScanRWKV", dtype, "cuda")
    assert_forwards_agree(fast, slow, str(dtype))
