"""What RWKV-7's recurrence reads (learning rate, removal key, adjusted key, decay, mixed values)
in one Triton kernel (eggroll_torch.models.llm.wkv_inputs_triton) against the model's plain ops
(``rwkv7._wkv_inputs_ops``).

The kernel repeats the ops' roundings and torch's CUDA formulas for ``sigmoid`` and
``logaddexp`` on libdevice; only its float32 sum of squares runs in another order, so it agrees
under the ``reduction`` tolerance. Without a GPU, Triton's interpreter runs it on the CPU in a
subprocess (bfloat16 as 16-bit patterns, numpy's ``exp``/``log1p`` for libdevice's); on CUDA the
gates are also checked over every bfloat16 input.
"""
from __future__ import annotations

import pytest
import torch

from conformance.tolerances import compare
from eggroll_torch.models.llm import rwkv7
from eggroll_torch.random.triton_support import triton_installed, triton_usable
from triton_interpreted import (assert_compiles_for_sm90_without_fma, every_bfloat16, exact_bfloat16_checks,
                                run_interpreted)

NEEDS_KERNEL = pytest.mark.skipif(not (torch.cuda.is_available() and triton_usable("cuda")),
                                  reason="the recurrence-inputs kernel needs CUDA and triton")

# (lead, T, H, S, per-member vectors, mixed values): a generated token of RWKV-7 0.1B past layer 0,
# a prompt with per-member (noised) k_k and k_a, layer 0 (no value mix), two lead axes, heads
# that are not a power of two, one channel.
CASES = [((3,), 1, 12, 64, False, True), ((4,), 5, 2, 8, True, True), ((3,), 1, 12, 64, False, False),
         ((2, 3), 2, 4, 16, False, True), ((2,), 3, 5, 32, True, False), ((1,), 2, 1, 1, False, True)]
NAMES = ("-kk", "kk * a", "adjusted k", "w", "v")


def _inputs(case, dtype, device, seed=0):
    """``(k, a_low, a0, k_k, k_a, w_low, w0, v, v_first, v_low, v0, heads)`` as the model passes
    them; the decay's pre-activation spans softplus's linear and exponential ends."""
    lead, tokens, heads, size, per_member, mix = case
    gen = torch.Generator().manual_seed(seed)

    def normal(*shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=gen) * scale + shift).to(device=device, dtype=dtype)

    channels = heads * size
    rows = (*lead, tokens, channels)
    k = normal(*rows, scale=2.0)
    if k.numel() > size:
        k.reshape(-1, size)[0] = 0  # a zero head: its norm is floored
    vector = (*lead, 1, channels) if per_member else (channels,)
    a_low, a0 = normal(*rows), normal(*vector)
    k_k, k_a = normal(*vector, shift=0.8), normal(*vector, scale=0.5)
    w_low, w0 = normal(*rows, scale=6.0), normal(*vector, scale=4.0)
    v, v_first = normal(*rows), normal(*rows)
    v_low, v0 = (normal(*rows, scale=3.0), normal(*vector)) if mix else (None, None)
    return k, a_low, a0, k_k, k_a, w_low, w0, v, v_first if mix else None, v_low, v0, heads


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
    non-contiguous inputs, misshaped vectors, a value mix without ``v_first`` or ``v0`` and inputs that want
    autograd stay on the plain ops; a direct call says what the kernel takes."""
    from eggroll_torch.models.llm.wkv_inputs_triton import supports, wkv_inputs

    *tensors, heads = _inputs(CASES[1], torch.float32, "cpu")
    k, a_low, a0, k_k, k_a, w_low, w0, v, v_first, v_low, v0 = tensors

    def changed(index, value, heads=heads):
        return supports(*[value if i == index else t for i, t in enumerate(tensors)], heads)

    assert supports(*tensors, heads)
    assert not supports(*[t.half() for t in tensors], heads)
    assert not changed(1, a_low.double())
    assert not changed(10, v0.double())
    assert not supports(*tensors, 3)
    wide = _inputs(CASES[4], torch.float32, "cpu")[:11]  # 160 channels
    assert supports(*wide, 5) and not supports(*wide, 32)
    assert not changed(0, k.transpose(0, 1).contiguous().transpose(0, 1))
    assert not changed(3, k_k[..., :-1])
    assert not changed(2, a0[..., :-1])
    assert not changed(8, None)
    assert not changed(10, None)
    assert supports(*tensors[:8], None, None, None, heads)
    assert not changed(5, w_low[..., :-1])
    assert not changed(0, k.requires_grad_())
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        wkv_inputs(*[t.half() for t in tensors], heads, 1e-12)


@pytest.mark.skipif(not triton_installed(), reason="triton is not installed (it is optional)")
@pytest.mark.parametrize("bf16", [True, False], ids=["bfloat16", "float32"])
def test_kernel_compiles_for_sm90_without_fused_multiply_adds(bf16):
    from eggroll_torch.models.llm.wkv_inputs_triton import _KERNEL_OPTIONS, _wkv_inputs_kernel

    pointer = "*i16" if bf16 else "*fp32"
    signature = {**{name: pointer for name in ("k_ptr", "a_low_ptr", "a0_ptr", "k_k_ptr", "k_a_ptr", "w_low_ptr",
                                               "w0_ptr", "v_ptr", "v_first_ptr", "v_low_ptr", "v0_ptr", "out_ptr")},
                 **{name: "i32" for name in ("T", "H", "a0_stride_l", "k_k_stride_l", "k_a_stride_l", "w0_stride_l",
                                             "v0_stride_l", "out_stride")},
                 "floor": "fp32"}
    assert_compiles_for_sm90_without_fma(_wkv_inputs_kernel, signature,
                                         {"S": 64, "BLOCK_H": 16, "IS_BF16": bf16, "MIX_V": True}, _KERNEL_OPTIONS,
                                         libdevice_calls={"exp": 3, "log1p": 1}, block=16 * 64)


@pytest.mark.cuda
@NEEDS_KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_kernel_matches_the_plain_wkv_inputs(case, dtype):
    ok, detail = compare_case(case, dtype, "cuda")
    assert ok, detail


def _every_preactivation(dtype, device):
    """Inputs whose ``a_low``, ``w_low`` and ``v_low`` run over every bfloat16 bit pattern (NaN
    and infinities included; for float32 a million values spread over its exponents) with zero
    biases, so that the sigmoids and the softplus meet each input value itself."""
    if dtype == torch.bfloat16:
        values = every_bfloat16()
    else:
        gen = torch.Generator().manual_seed(1)
        values = torch.randn(2 ** 20, generator=gen) * torch.exp2(torch.randint(-30, 8, (2 ** 20,), generator=gen))
    heads, size = 4, 64
    rows = values.to(device).reshape(1, -1, heads * size)
    zeros = torch.zeros(heads * size, dtype=dtype, device=device)
    ones = torch.ones_like(rows)
    return (ones, rows, zeros, zeros + 1, zeros, rows.flip(-1).contiguous(), zeros, ones, ones * 2,
            rows.roll(1, -2), zeros, heads)


@pytest.mark.cuda
@NEEDS_KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_kernel_gates_match_torch_on_every_preactivation(dtype):
    """libdevice's ``expf`` and ``log1pf`` in the kernel give torch's CUDA ``sigmoid`` and
    ``logaddexp`` bits: the learning rate (``kk * a`` with unit ``kk`` reads it back), the
    decay and the value mix agree exactly over every bfloat16 input."""
    from eggroll_torch.models.llm.wkv_inputs_triton import wkv_inputs

    inputs = _every_preactivation(dtype, "cuda")
    got = wkv_inputs(*inputs, rwkv7._KK_NORM_FLOOR)
    expected = rwkv7._wkv_inputs_ops(*inputs)
    for name, g, e in zip(NAMES, got, expected):
        result = compare(g, e.reshape(g.shape), "exact")
        assert result.ok, result.message(name)


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
