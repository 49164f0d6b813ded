"""What RWKV-7's recurrence reads (removal key, adjusted key, decay, mixed values) in one Triton
kernel (eggroll_torch.models.llm.wkv_inputs_triton) against the model's plain ops
(``rwkv7._wkv_inputs_ops``).

The kernel repeats the ops' roundings; only its float32 sum of squares runs in another order, so
it agrees under the ``reduction`` tolerance. Without a GPU, Triton's interpreter runs it on the
CPU in a subprocess (bfloat16 as 16-bit patterns).
"""
from __future__ import annotations

import pytest
import torch

from conformance.tolerances import compare
from eggroll_torch.models.llm import rwkv7
from eggroll_torch.random.triton_support import triton_installed, triton_usable
from triton_interpreted import assert_compiles_for_sm90_without_fma, exact_bfloat16_checks, run_interpreted

NEEDS_KERNEL = pytest.mark.skipif(not (torch.cuda.is_available() and triton_usable("cuda")),
                                  reason="the recurrence-inputs kernel needs CUDA and triton")

# (lead, T, H, S, per-member vectors, mixed values): a generated token of RWKV-7 0.1B past layer 0,
# a prompt with per-member (noised) k_k and k_a, layer 0 (no value mix), two lead axes, heads
# that are not a power of two, one channel.
CASES = [((3,), 1, 12, 64, False, True), ((4,), 5, 2, 8, True, True), ((3,), 1, 12, 64, False, False),
         ((2, 3), 2, 4, 16, False, True), ((2,), 3, 5, 32, True, False), ((1,), 2, 1, 1, False, True)]
NAMES = ("-kk", "kk * a", "adjusted k", "w", "v")


def _inputs(case, dtype, device, seed=0):
    """``(k, a, k_k, k_a, softplus, v, v_first, gate, heads)`` as the model passes them."""
    lead, tokens, heads, size, per_member, mix = case
    gen = torch.Generator().manual_seed(seed)

    def normal(*shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=gen) * scale + shift).to(device=device, dtype=dtype)

    channels = heads * size
    rows = (*lead, tokens, channels)
    k = normal(*rows, scale=2.0)
    if k.numel() > size:
        k.reshape(-1, size)[0] = 0  # a zero head: its norm is floored
    a = normal(*rows).sigmoid()
    vector = (*lead, 1, channels) if per_member else (channels,)
    k_k, k_a = normal(*vector, shift=0.8), normal(*vector, scale=0.5)
    softplus = torch.nn.functional.softplus(normal(*rows, scale=2.0))
    v, v_first = normal(*rows), normal(*rows)
    gate = normal(*rows).sigmoid() if mix else None
    return k, a, k_k, k_a, softplus, v, v_first if mix else None, gate, heads


def compare_case(case, dtype, device, exact_bfloat16=False) -> tuple[bool, str]:
    """The kernel's five results against the plain ops under the ``reduction`` tolerance, or bit
    for bit for bfloat16 with ``exact_bfloat16``."""
    from eggroll_torch.models.llm.wkv_inputs_triton import supports, wkv_inputs

    inputs = _inputs(case, dtype, device)
    if not supports(*inputs):
        return False, "supports() refused the case"
    got = wkv_inputs(*inputs, rwkv7._KK_NORM_FLOOR)
    expected = rwkv7._wkv_inputs_ops(*inputs)
    kind = "exact" if exact_bfloat16 and dtype == torch.bfloat16 else "reduction"
    for name, g, e in zip(NAMES, got, expected):
        e = e.reshape(g.shape)
        if g.dtype != e.dtype:
            return False, f"{name}: {g.dtype} against {e.dtype}"
        result = compare(g, e, kind)
        if not result.ok:
            return False, result.message(name)
    return True, f"within {kind}"


def interpreted_checks() -> dict:
    """:data:`CASES` in float32 and bfloat16 on the CPU (run under ``TRITON_INTERPRET=1``).

    bfloat16 must come out bit for bit: the float32 sum's last bits do not survive the rounding on
    these inputs, and the two-ULP tolerance would let a dropped rounding through."""
    return exact_bfloat16_checks(compare_case, CASES)


@pytest.mark.skipif(not triton_installed(), reason="triton is not installed (it is optional); "
                                                   "`pip install triton` to check the kernel on the CPU")
def test_kernel_matches_the_plain_wkv_inputs_interpreted():
    """:func:`interpreted_checks` in a fresh process under Triton's interpreter."""
    run_interpreted(__file__, "interpreted_checks")


@pytest.mark.skipif(not triton_installed(), reason="triton is not installed (it is optional)")
def test_kernel_refuses_what_it_does_not_take():
    """Other dtypes, mixed dtypes, heads that do not split the channels into power-of-two widths,
    non-contiguous inputs, misshaped vectors, a gate without ``v_first`` and inputs that want
    autograd stay on the plain ops; a direct call says what the kernel takes."""
    from eggroll_torch.models.llm.wkv_inputs_triton import supports, wkv_inputs

    k, a, k_k, k_a, softplus, v, v_first, gate, heads = _inputs(CASES[1], torch.float32, "cpu")
    tensors = [k, a, k_k, k_a, softplus, v, v_first, gate]

    def changed(index, value, heads=heads):
        return supports(*[value if i == index else t for i, t in enumerate(tensors)], heads)

    assert supports(*tensors, heads)
    assert not supports(*[t.half() for t in tensors], heads)
    assert not changed(1, a.double())
    assert not supports(*tensors, 3)
    wide = _inputs(CASES[4], torch.float32, "cpu")[:8]  # 160 channels
    assert supports(*wide, 5) and not supports(*wide, 32)
    assert not changed(0, k.transpose(0, 1).contiguous().transpose(0, 1))
    assert not changed(2, k_k[..., :-1])
    assert not changed(6, None)
    assert not changed(4, softplus[..., :-1])
    assert not changed(0, k.requires_grad_())
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        wkv_inputs(*[t.half() for t in tensors], heads, 1e-12)


@pytest.mark.skipif(not triton_installed(), reason="triton is not installed (it is optional)")
@pytest.mark.parametrize("bf16", [True, False], ids=["bfloat16", "float32"])
def test_kernel_compiles_for_sm90_without_fused_multiply_adds(bf16):
    from eggroll_torch.models.llm.wkv_inputs_triton import _OPTIONS, _wkv_inputs_kernel

    pointer = "*i16" if bf16 else "*fp32"
    signature = {**{name: pointer for name in ("k_ptr", "a_ptr", "k_k_ptr", "k_a_ptr", "softplus_ptr", "v_ptr",
                                               "v_first_ptr", "gate_ptr", "out_ptr")},
                 **{name: "i32" for name in ("T", "H", "k_k_stride_l", "k_a_stride_l", "out_stride")},
                 "floor": "fp32"}
    assert_compiles_for_sm90_without_fma(_wkv_inputs_kernel, signature,
                                         {"S": 64, "BLOCK_H": 16, "IS_BF16": bf16, "MIX_V": True}, _OPTIONS)


@pytest.mark.cuda
@NEEDS_KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_kernel_matches_the_plain_wkv_inputs(case, dtype):
    ok, detail = compare_case(case, dtype, "cuda")
    assert ok, detail


@pytest.mark.cuda
@NEEDS_KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_rwkv7_population_forward_runs_the_kernel(dtype, monkeypatch):
    """A noised RWKV-7 population forward (per-member k_k and k_a) forms each layer's recurrence
    inputs through the kernel (mixing the values past layer 0), and its logits and state agree
    with the plain ops."""
    from eggroll_torch.models.llm import wkv_inputs_triton
    from test_wkv_triton import assert_forwards_agree, forward_with_and_without

    calls, fast, slow = forward_with_and_without(wkv_inputs_triton, "wkv_inputs", dtype, monkeypatch)
    layers = 2
    assert len(calls) == layers * 2, len(calls)
    assert_forwards_agree(fast, slow, str(dtype))
