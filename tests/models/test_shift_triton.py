"""RWKV-7's token shift and interpolations in one Triton kernel (eggroll_torch.models.llm.shift_triton)
against the plain ops of ``rwkv7._shift_lerps``.

The kernel repeats the ops' roundings one for one (a difference, then a product and a sum per mixing
vector, each rounded to the dtype), so it must give the same bits. Without a GPU, Triton's
interpreter runs it on the CPU in a subprocess (bfloat16 as 16-bit patterns, so bfloat16 too).
"""
from __future__ import annotations

import pytest
import torch

from conformance.tolerances import compare
from eggroll_torch.models.llm import rwkv7
from eggroll_torch.random.triton_support import triton_installed, triton_usable
from triton_interpreted import assert_compiles_for_sm90_without_fma, run_interpreted

NEEDS_KERNEL = pytest.mark.skipif(not (torch.cuda.is_available() and triton_usable("cuda")),
                                  reason="the token-shift kernel needs CUDA and triton")

# (lead, T, C, mixes, starts, per-member mixes): a generated token of RWKV-7 0.1B's time mixing,
# a prompt with shared resets, per-member resets and mixes, two lead axes, one mix (the channel
# mixing), rows wider than one program's block, one channel.
CASES = [((3,), 1, 768, 6, "none", False), ((2,), 5, 100, 6, "shared", False), ((4,), 6, 64, 6, "member", True),
         ((2, 3), 4, 16, 3, "member", False), ((2,), 3, 40, 1, "shared", True), ((2,), 2, 2500, 2, "shared", False),
         ((1,), 3, 1, 1, "none", False)]


def _inputs(case, dtype, device, seed=0):
    lead, tokens, channels, count, starts, per_member = case
    gen = torch.Generator().manual_seed(seed)

    def normal(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen) * scale).to(device=device, dtype=dtype)

    x = normal(*lead, tokens, channels, scale=3.0)
    # previous as the model passes it: row 0 of a wider per-layer state, not contiguous.
    previous = normal(*lead, 4, channels)[..., :1, :]
    mix_shape = (*lead, 1, channels) if per_member else (channels,)
    mixes = [normal(*mix_shape).sigmoid() for _ in range(count)]
    if starts == "none":
        new_starts = torch.zeros(tokens, dtype=torch.bool)
    elif starts == "shared":
        new_starts = torch.arange(tokens) % 2 == 1
    else:
        new_starts = torch.rand(*lead, tokens, generator=gen) < 0.4
        new_starts.reshape(-1, tokens)[0, 0] = True
    return x, previous, new_starts.to(device), mixes


def _plain(x, previous, new_starts, mixes):
    delta = rwkv7._shift_delta(previous, x, new_starts)
    return [x + delta * mix for mix in mixes]


def compare_case(case, dtype, device) -> tuple[bool, str]:
    """The kernel's results against the plain ops, bit for bit."""
    from eggroll_torch.models.llm.shift_triton import shift_lerps, supports

    inputs = _inputs(case, dtype, device)
    if not supports(*inputs):
        return False, "supports() refused the case"
    got, expected = shift_lerps(*inputs), _plain(*inputs)
    for index, (g, e) in enumerate(zip(got, expected)):
        if g.shape != e.shape or g.dtype != e.dtype:
            return False, f"mix {index}: {g.shape} {g.dtype} against {e.shape} {e.dtype}"
        if not torch.equal(g, e):
            return False, compare(g, e, "exact").message(f"mix {index}")
    return True, "bit for bit"


def interpreted_checks() -> dict:
    """:data:`CASES` in float32 and bfloat16 on the CPU (run under ``TRITON_INTERPRET=1``)."""
    results = {}
    for dtype in (torch.float32, torch.bfloat16):
        for case in CASES:
            ok, detail = compare_case(case, dtype, "cpu")
            results[f"{case} {dtype}"] = {"ok": ok, "detail": detail}
    return results


@pytest.mark.skipif(not triton_installed(), reason="triton is not installed (it is optional); "
                                                   "`pip install triton` to check the kernel on the CPU")
def test_kernel_matches_the_plain_shift_and_lerps_interpreted():
    """:func:`interpreted_checks` in a fresh process under Triton's interpreter."""
    run_interpreted(__file__, "interpreted_checks")


@pytest.mark.skipif(not triton_installed(), reason="triton is not installed (it is optional)")
def test_kernel_refuses_what_it_does_not_take():
    """Other dtypes, mixed dtypes or mix layouts, too many mixes, a misshaped ``previous`` or
    ``new_starts`` and inputs that want autograd stay on the plain ops; a direct call says what
    the kernel takes."""
    from eggroll_torch.models.llm.shift_triton import shift_lerps, supports

    x, previous, new_starts, mixes = _inputs(CASES[1], torch.float32, "cpu")
    assert supports(x, previous, new_starts, mixes)
    half = [t.half() for t in (x, previous, *mixes)]
    assert not supports(half[0], half[1], new_starts, half[2:])
    assert not supports(x, previous, new_starts, [mixes[0].double(), *mixes[1:]])
    assert not supports(x, previous, new_starts, [mixes[0], mixes[1].expand(2, 1, 100).contiguous()])
    assert not supports(x, previous, new_starts, mixes * 2)
    assert not supports(x, previous, new_starts, [])
    assert not supports(x, previous[:1], new_starts, mixes)
    assert not supports(x, previous, new_starts.int(), mixes)
    assert not supports(x, previous, new_starts[:-1], mixes)
    assert not supports(x.requires_grad_(), previous, new_starts, mixes)
    with pytest.raises(ValueError, match="float32 or bfloat16 x"):
        shift_lerps(half[0], half[1], new_starts, half[2:])


@pytest.mark.skipif(not triton_installed(), reason="triton is not installed (it is optional)")
@pytest.mark.parametrize("bf16", [True, False], ids=["bfloat16", "float32"])
def test_kernel_compiles_for_sm90_without_fused_multiply_adds(bf16):
    """Compiled for an H100 with its launch options (Triton ships ptxas), the kernel has no
    ``fma``: each product is rounded before the sum that follows it, as torch rounds it."""
    from eggroll_torch.models.llm.shift_triton import _OPTIONS, _shift_lerp_kernel

    pointer = "*i16" if bf16 else "*fp32"
    signature = {"x_ptr": pointer, "previous_ptr": pointer, "starts_ptr": "*u8", "out_ptr": pointer,
                 **{f"m{i}_ptr": pointer for i in range(6)},
                 **{name: "i32" for name in ("T", "C", "x_stride_l", "x_stride_t", "previous_stride_l",
                                             "starts_stride_l", "starts_stride_t", "out_stride_mix",
                                             "mix_stride_l")}}
    assert_compiles_for_sm90_without_fma(_shift_lerp_kernel, signature, {"N_MIX": 6, "IS_BF16": bf16, "BLOCK": 1024},
                                         _OPTIONS)


def test_shift_lerps_keep_the_plain_ops_off_cuda(monkeypatch):
    """On the CPU the model never imports the kernel."""
    import sys

    monkeypatch.delitem(sys.modules, "eggroll_torch.models.llm.shift_triton", raising=False)
    from test_wkv_triton import population_forward

    population_forward("ScanRWKV", torch.float32, "cpu")
    assert "eggroll_torch.models.llm.shift_triton" not in sys.modules


@pytest.mark.cuda
@NEEDS_KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_kernel_matches_the_plain_shift_and_lerps(case, dtype):
    ok, detail = compare_case(case, dtype, "cuda")
    assert ok, detail


@pytest.mark.cuda
@NEEDS_KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_rwkv7_population_forward_runs_the_kernel(dtype, monkeypatch):
    """A noised RWKV-7 population forward shifts and interpolates through the kernel (time and
    channel mixing of each layer), with the same logits and state as on the plain ops."""
    from eggroll_torch.models.llm import shift_triton
    from test_wkv_triton import forward_with_and_without

    calls, fast, slow = forward_with_and_without(shift_triton, "shift_lerps", dtype, monkeypatch)
    layers = 2
    assert sorted(len(args[3]) for args in calls) == sorted([6, 1] * layers * 2), calls
    for name, got, expected in zip(("logits 1", "state 1", "logits 2", "state 2"), fast, slow):
        assert torch.equal(got, expected), compare(got, expected, "exact").message(f"{dtype} {name}")
