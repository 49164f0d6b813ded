"""RWKV-7's readout path (``ln_x``, bonus, gate) in one Triton kernel
(eggroll_torch.models.llm.readout_triton) against the model's plain ops.

The kernel repeats the ops' roundings; only its three float32 sums (the GroupNorm statistics and
the bonus) run in another order, so it agrees under the ``reduction`` tolerance. Without a GPU,
Triton's interpreter runs it on the CPU in a subprocess (bfloat16 as 16-bit patterns).
"""
from __future__ import annotations

import pytest
import torch

from conformance.tolerances import compare
from eggroll_torch.models.llm import rwkv7
from eggroll_torch.random.triton_support import triton_installed, triton_usable
from triton_interpreted import assert_compiles_for_sm90_without_fma, exact_bfloat16_checks, run_interpreted

NEEDS_KERNEL = pytest.mark.skipif(not (torch.cuda.is_available() and triton_usable("cuda")),
                                  reason="the readout kernel needs CUDA and triton")

# (lead, T, H, S, per-member params): a generated token of RWKV-7 0.1B, a prompt of a small model
# with per-member (noised) norm and bonus vectors, two lead axes, heads that are not a power of
# two, one head of one channel.
CASES = [((3,), 1, 12, 64, False), ((4,), 5, 2, 8, True), ((2, 3), 2, 4, 16, False), ((2,), 3, 5, 32, True),
         ((1,), 2, 1, 1, False)]


def _inputs(case, dtype, device, seed=0):
    lead, tokens, heads, size, per_member = case
    gen = torch.Generator().manual_seed(seed)

    def normal(*shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=gen) * scale + shift).to(device=device, dtype=dtype)

    channels = heads * size
    readout = normal(*lead, tokens, channels, scale=2.0, shift=0.5)
    if readout.numel() > size:
        readout.reshape(-1, size)[0] = 0.75  # a constant head: zero variance
    weight_shape, r_k_shape = ((*lead, 1, channels), (*lead, 1, heads, size)) if per_member else ((channels,),
                                                                                                  (heads, size))
    weight, bias = normal(*weight_shape, shift=1.0), normal(*weight_shape, scale=0.1)
    r, k, v = (normal(*lead, tokens, heads, size) for _ in range(3))
    r_k = normal(*r_k_shape, scale=0.5)
    g = normal(*lead, tokens, channels).sigmoid()
    return readout, weight, bias, r, k, v, r_k, g


def _plain(readout, weight, bias, r, k, v, r_k, g):
    heads, channels = r.shape[-2], readout.shape[-1]
    normed = rwkv7._group_standardize(readout.reshape(-1, channels), heads, rwkv7._LN_X_EPS).reshape(readout.shape)
    x = weight * normed + bias
    bonus = torch.sum(r * k * r_k, dim=-1, keepdim=True)
    return (x + (bonus * v).reshape(readout.shape)) * g


def compare_case(case, dtype, device, exact_bfloat16=False) -> tuple[bool, str]:
    """The kernel's result against the plain ops under the ``reduction`` tolerance, or bit for bit
    for bfloat16 with ``exact_bfloat16``."""
    from eggroll_torch.models.llm.readout_triton import gated_readout, supports

    inputs = _inputs(case, dtype, device)
    if not supports(*inputs):
        return False, "supports() refused the case"
    got, expected = gated_readout(*inputs, rwkv7._LN_X_EPS), _plain(*inputs)
    if got.shape != expected.shape or got.dtype != expected.dtype:
        return False, f"{got.shape} {got.dtype} against {expected.shape} {expected.dtype}"
    result = compare(got, expected, "exact" if exact_bfloat16 and dtype == torch.bfloat16 else "reduction")
    return result.ok, result.message("gated readout")


def interpreted_checks() -> dict:
    """:data:`CASES` in float32 and bfloat16 on the CPU (run under ``TRITON_INTERPRET=1``).

    bfloat16 must come out bit for bit: the float32 sums' last bits do not survive the rounding on
    these inputs, and the two-ULP tolerance would let a dropped rounding of a product through."""
    return exact_bfloat16_checks(compare_case, CASES)


@pytest.mark.skipif(not triton_installed(), reason="triton is not installed (it is optional); "
                                                   "`pip install triton` to check the kernel on the CPU")
def test_kernel_matches_the_plain_readout_interpreted():
    """:func:`interpreted_checks` in a fresh process under Triton's interpreter."""
    run_interpreted(__file__, "interpreted_checks")


@pytest.mark.skipif(not triton_installed(), reason="triton is not installed (it is optional)")
def test_kernel_refuses_what_it_does_not_take():
    """Other dtypes, mixed dtypes, heads that are not a power of two wide, non-contiguous inputs,
    misshaped parameters and inputs that want autograd stay on the plain ops; a direct call says
    what the kernel takes."""
    from eggroll_torch.models.llm.readout_triton import gated_readout, supports

    inputs = list(_inputs(CASES[1], torch.float32, "cpu"))
    assert supports(*inputs)

    def changed(index, value):
        return [value if i == index else t for i, t in enumerate(inputs)]

    assert not supports(*[t.half() for t in inputs])
    assert not supports(*changed(7, inputs[7].double()))
    readout, _, _, r, _, _, _, g = _inputs(((4,), 5, 2, 6, False), torch.float32, "cpu")
    assert not supports(readout, *inputs[1:3], r, r, r, inputs[6][..., :6], g)
    assert not supports(*changed(3, inputs[3].transpose(0, 1).contiguous().transpose(0, 1)))
    assert not supports(*changed(1, inputs[1][..., :-1]))
    assert not supports(*changed(0, inputs[0].requires_grad_()))
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        gated_readout(*[t.half() for t in inputs], 1e-5)


@pytest.mark.skipif(not triton_installed(), reason="triton is not installed (it is optional)")
@pytest.mark.parametrize("bf16", [True, False], ids=["bfloat16", "float32"])
def test_kernel_compiles_for_sm90_without_fused_multiply_adds(bf16):
    """Compiled for an H100 with its launch options (Triton ships ptxas), the kernel has no
    ``fma``: each product is rounded before the sum that follows it, as torch rounds it."""
    from eggroll_torch.models.llm.readout_triton import _OPTIONS, _gated_readout_kernel

    pointer = "*i16" if bf16 else "*fp32"
    signature = {**{name: pointer for name in ("readout_ptr", "weight_ptr", "bias_ptr", "r_ptr", "k_ptr", "v_ptr",
                                               "r_k_ptr", "g_ptr", "out_ptr")},
                 **{name: "i32" for name in ("T", "H", "weight_stride_l", "bias_stride_l", "r_k_stride_l")},
                 "reciprocal": "fp32", "eps": "fp32"}
    assert_compiles_for_sm90_without_fma(_gated_readout_kernel, signature, {"S": 64, "BLOCK_H": 16, "IS_BF16": bf16},
                                         _OPTIONS)


@pytest.mark.cuda
@NEEDS_KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_kernel_matches_the_plain_readout(case, dtype):
    ok, detail = compare_case(case, dtype, "cuda")
    assert ok, detail


@pytest.mark.cuda
@NEEDS_KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_rwkv7_population_forward_runs_the_kernel(dtype, monkeypatch):
    """A noised RWKV-7 population forward (per-member norm and bonus vectors) runs each layer's
    readout through the kernel, and its logits and state agree with the plain ops."""
    from eggroll_torch.models.llm import readout_triton
    from test_wkv_triton import assert_forwards_agree, forward_with_and_without

    calls, fast, slow = forward_with_and_without(readout_triton, "gated_readout", dtype, monkeypatch)
    layers = 2
    assert len(calls) == layers * 2, len(calls)
    assert_forwards_agree(fast, slow, str(dtype))
