"""The Triton WKV kernel (eggroll_torch.models.llm.wkv_triton) against RWKV-7's token loop.

On CUDA the kernel's kept state and readouts agree with ``BaseRWKV.inner_loop``'s Python loop on
the same device (run by switching the kernel off) under the ``recurrence`` tolerance, dtypes
included: float32, bfloat16 and float16, one member and populations, several head sizes, resets
shared or per member, ``length`` below, at and beyond ``T``, zero, and as a tensor. A population
forward of ScanRWKV with EGGROLL noise, which dispatches to the kernel, agrees with its loop run
in logits and state. States that are slices of a larger buffer or expanded are read in place,
and the kept state is written into a caller's strided buffer (``out``) and nowhere else.
Without a GPU, Triton's interpreter runs the float32 and float16 cases on the CPU (in a
subprocess: the interpreter is chosen when the kernel is first compiled); it cannot do bfloat16
arithmetic, which only the CUDA tests check.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conformance.tolerances import compare
from eggroll_torch.models.llm import rwkv7
from eggroll_torch.random.triton_support import triton_installed, triton_usable
from triton_interpreted import assert_keeps_subnormals, every_bfloat16, run_interpreted

NEEDS_KERNEL = pytest.mark.skipif(not (torch.cuda.is_available() and triton_usable("cuda")),
                                  reason="the WKV kernel needs CUDA and triton")

# (leading axes, T, H, S, length, resets): resets None (no flags), "shared" ((T,)) or "member"
# ((..., T)); length an int or ("tensor", n).
CASES = [
    ((4,), 64, 3, 64, 64, None),
    ((4,), 64, 3, 64, 40, "member"),
    ((2, 3), 17, 2, 32, 9, "shared"),
    ((), 33, 4, 64, 33, "shared"),
    ((3,), 256, 2, 64, ("tensor", 200), "member"),
    ((5,), 12, 2, 16, 0, "member"),
    ((2,), 12, 1, 8, 30, None),
    ((2,), 20, 2, 128, ("tensor", -3), "shared"),
]
INTERPRETED = [((3,), 7, 2, 8, 7, None), ((2,), 9, 2, 16, 4, "shared"), ((2,), 6, 2, 32, 0, "member"),
               ((), 5, 1, 4, ("tensor", 9), "member")]


def wkv_inputs(lead, n_tokens, n_head, size, resets, dtype, device, seed=0):
    """Inputs shaped as TimeMixing hands them to ``inner_loop``: ``w`` the log-log decay (decays
    near 0.93, as a trained model's), ``a = -kk`` and ``b = kk * gate`` for a unit ``kk``, a
    nonzero initial state, and the reset mask."""
    gen = torch.Generator().manual_seed(seed)

    def normal(*shape, scale=1.0):
        return torch.randn(*shape, generator=gen) * scale

    shape = (*lead, n_tokens, n_head, size)
    kk = torch.nn.functional.normalize(normal(*shape), dim=-1)
    gate = torch.sigmoid(normal(*shape))
    w = -torch.nn.functional.softplus(-(normal(*shape) - 2.0)) - 0.5
    tensors = [normal(*shape), w, normal(*shape, scale=0.5), normal(*shape), -kk, kk * gate,
               normal(*lead, n_head, size, size, scale=0.3)]
    if resets is None:
        flags = torch.zeros(n_tokens, dtype=torch.bool)
    else:
        flags = torch.rand(*(lead if resets == "member" else ()), n_tokens, generator=gen) < 0.1
    return [x.to(device=device, dtype=dtype) for x in tensors] + [flags.to(device)]


def _length(length, device):
    return torch.tensor(length[1], device=device) if isinstance(length, tuple) else length


def _laid_out(s, layout):
    """``s (..., H, S, S)`` as the model hands it over: ``"contiguous"``; ``"slice"``, every
    member's block one of two in a larger buffer (a layer's rows of the whole state); or
    ``"expanded"``, member 0's block for all (the first step's broadcast zero state)."""
    if layout == "contiguous":
        return s
    if layout == "expanded":
        return s[:1].expand_as(s)
    buffer = torch.full((*s.shape[:-3], 2, *s.shape[-3:]), float("nan"), dtype=s.dtype, device=s.device)
    buffer[..., 1, :, :, :] = s
    return buffer[..., 1, :, :, :]


def compare_case(case, dtype, device, loop, layout="contiguous", into=False, log_decay=False):
    """``(readouts, kept state)`` comparisons of the kernel against ``loop(r, w, k, v, a, b, s,
    length, new_starts)`` (the token loop, log-log decays) for one case of :data:`CASES`, the
    state laid out as :func:`_laid_out` says. ``into``: the kernel writes the state into ``out``,
    every member's block one of two in a NaN-filled buffer, and must leave the other untouched.
    ``log_decay``: the kernel is handed the log-log decays and forms the decays itself."""
    from eggroll_torch.models.llm.wkv_triton import supports, wkv7

    lead, n_tokens, n_head, size, length, resets = case
    r, w, k, v, a, b, s, flags = wkv_inputs(lead, n_tokens, n_head, size, resets, dtype, device)
    s = _laid_out(s, layout)
    kept_loop, out_loop = loop(r, w, k, v, a, b, s, _length(length, device), flags)
    decay = w if log_decay else torch.exp(-torch.exp(w))
    assert supports(r, decay, k, v, a, b, s, flags)
    if not into:
        kept, out = wkv7(r, decay, k, v, a, b, s, _length(length, device), flags, log_decay=log_decay)
        return compare(out, out_loop, "recurrence"), compare(kept, kept_loop, "recurrence")
    buffer = torch.full((*s.shape[:-3], 2, *s.shape[-3:]), float("nan"), dtype=s.dtype, device=s.device)
    target = buffer[..., 1, :, :, :]
    kept, out = wkv7(r, decay, k, v, a, b, s, _length(length, device), flags, out=target, log_decay=log_decay)
    assert kept is target, "wkv7(out=...) returns out itself"
    assert torch.isnan(buffer[..., 0, :, :, :]).all(), "wkv7(out=...) wrote outside out"
    return compare(out, out_loop, "recurrence"), compare(kept, kept_loop, "recurrence")


def _float32_exp(x):
    """``exp(x)`` in float64, rounded to float32 and then to ``x``'s dtype: what the kernel makes
    of a float32 ``expf`` that is correctly rounded (the interpreter's stand-in)."""
    return torch.from_numpy(np.exp(x.double().numpy())).float().to(x.dtype)


def decay_case(dtype, device, reference, count=2 ** 16):
    """The decay the kernel forms from log-log decays ``w``, exactly against ``exp(-exp(w))``
    with each exp rounded to the dtype: torch's ops (``reference="torch"``) or
    :func:`_float32_exp` (``"float32 exp"``). One token from a state of ones with zero keys,
    values, removal and replacement leaves exactly ``1 * decay`` in every row of the state.
    ``w`` runs over every bfloat16 bit pattern (NaN and infinities included), else ``count``
    values (a multiple of 64) spread over the exponents of float32 (or float16's range)."""
    from eggroll_torch.models.llm.wkv_triton import wkv7

    if dtype == torch.bfloat16:
        w = every_bfloat16()
    else:
        gen = torch.Generator().manual_seed(2)
        w = torch.randn(count, generator=gen) * torch.exp2(torch.randint(-24, 4, (count,), generator=gen))
    heads, size = 4, 16
    w = w.to(device=device, dtype=dtype).reshape(-1, 1, heads, size)
    zeros = torch.zeros_like(w)
    s = torch.ones(w.shape[0], heads, size, size, dtype=dtype, device=device)
    kept, _ = wkv7(zeros, w, zeros, zeros, zeros, zeros, s, 1, torch.zeros(1, dtype=torch.bool, device=device),
                   log_decay=True)
    expected = torch.exp(-torch.exp(w)) if reference == "torch" else _float32_exp(-_float32_exp(w))
    return compare(kept, expected.reshape(-1, heads, 1, size).expand_as(kept), "exact")


def _assert_ok(comparisons, what):
    for name, result in zip(("readouts", "kept state"), comparisons):
        assert result.ok, result.message(f"{what} {name}")


@pytest.fixture
def token_loop(monkeypatch):
    """``BaseRWKV.inner_loop`` with the kernel switched off: the Python loop, on any device."""
    monkeypatch.setattr(rwkv7, "triton_usable", lambda device: False)
    return rwkv7.BaseRWKV.inner_loop


@pytest.mark.cuda
@NEEDS_KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_kernel_matches_token_loop(case, dtype, token_loop):
    """Kept state and readouts of one case of :data:`CASES` against the loop on the GPU."""
    _assert_ok(compare_case(case, dtype, "cuda", token_loop), f"{case} {dtype}")


def test_kernel_skips_what_it_does_not_take():
    """Inputs of mixed dtypes, a state of other leading axes or inputs that require grad stay on
    the loop (``supports`` is False)."""
    if not triton_installed():
        pytest.skip("triton is not installed (it is optional)")
    from eggroll_torch.models.llm.wkv_triton import supports

    r, w, k, v, a, b, s, flags = wkv_inputs((2,), 5, 2, 8, "member", torch.float32, "cpu")
    assert supports(r, w, k, v, a, b, s, flags)
    assert not supports(r, w, k, v, a, b, s.bfloat16(), flags)
    assert not supports(r, w, k, v, a, b, s[:1], flags)
    assert not supports(r, w, k, v, a, b, s, torch.zeros(3, 5, dtype=torch.bool))
    assert not supports(r[..., :6], w[..., :6], k[..., :6], v[..., :6], a[..., :6], b[..., :6], s[..., :6, :6], flags)
    assert not supports(r.requires_grad_(), w, k, v, a, b, s, flags)


@pytest.mark.cuda
@NEEDS_KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("layout", ["slice", "expanded"])
def test_kernel_reads_strided_states(layout, dtype, token_loop):
    """A state that is a slice of a larger buffer or one member's expanded is read in place,
    with the results of the loop on the same tensor."""
    _assert_ok(compare_case(CASES[1], dtype, "cuda", token_loop, layout), f"{layout} {dtype}")


@pytest.mark.cuda
@NEEDS_KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", [CASES[1], CASES[2], CASES[5]], ids=["member", "two_axes", "length0"])
def test_kernel_writes_state_into_out(case, dtype, token_loop):
    """``out``, a strided slice of a larger buffer, receives the loop's kept state, and nothing
    else of the buffer is written."""
    _assert_ok(compare_case(case, dtype, "cuda", token_loop, into=True), f"{case} {dtype} into out")


@pytest.mark.cuda
@NEEDS_KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_kernel_forms_torchs_decay_bit_for_bit(dtype):
    """Handed log-log decays, the kernel's decay is torch's CUDA ``exp(-exp(w))`` exactly (every
    bfloat16 input; 65,536 float32 and float16 ones)."""
    result = decay_case(dtype, "cuda", "torch")
    assert result.ok, result.message(f"decay {dtype}")


@pytest.mark.cuda
@NEEDS_KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("case", [CASES[1], CASES[4]], ids=["member", "tensor_length"])
def test_kernel_with_log_decays_matches_token_loop(case, dtype, token_loop):
    """Kept state and readouts when the kernel forms the decays itself, against the loop."""
    _assert_ok(compare_case(case, dtype, "cuda", token_loop, log_decay=True), f"{case} {dtype} log decay")


@pytest.mark.skipif(not triton_installed(), reason="triton is not installed (it is optional)")
@pytest.mark.parametrize("pointer", ["*bf16", "*fp32", "*fp16"])
def test_kernel_forming_decays_compiles_for_sm90(pointer):
    """The kernel with libdevice's ``expf`` linked (no GPU needed: Triton ships ptxas) compiles
    for an H100, subnormals kept (the ftz build of libdevice fails it)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from eggroll_torch.models.llm.wkv_triton import _LIBDEVICE_OPTIONS, _wkv7_kernel

    signature = {**{name: pointer for name in ("r_ptr", "w_ptr", "k_ptr", "v_ptr", "a_ptr", "b_ptr", "s_ptr",
                                               "out_ptr", "kept_ptr")},
                 "reset_ptr": "*u8", "length_ptr": "*i32",
                 **{name: "i32" for name in ("T", "H", "s_stride_b", "kept_stride_b", "reset_stride_b",
                                             "reset_stride_t")},
                 "S": "constexpr", "ROWS": "constexpr", "LOG_DECAY": "constexpr"}
    source = ASTSource(_wkv7_kernel, signature, constexprs={"S": 64, "ROWS": 16, "LOG_DECAY": True})
    compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": 2, **_LIBDEVICE_OPTIONS})
    assert compiled.asm["cubin"]
    assert_keeps_subnormals(compiled.asm["ptx"])


def test_kernel_rejects_an_out_it_cannot_write():
    """An ``out`` of another shape or dtype, or whose member blocks are not contiguous, is refused
    before the launch, naming the argument."""
    if not triton_installed():
        pytest.skip("triton is not installed (it is optional)")
    from eggroll_torch.models.llm.wkv_triton import wkv7

    r, w, k, v, a, b, s, flags = wkv_inputs((2,), 5, 2, 8, "member", torch.float32, "cpu")
    for out in (s[:1].clone(), s.double(), s.transpose(-1, -2)):
        with pytest.raises(ValueError, match="out must"):
            wkv7(r, w, k, v, a, b, s, 5, flags, out=out)


def population_forward(variant, dtype, device):
    """ScanRWKV-family logits and state for 4 EGGROLL members over two calls (the second carrying
    the first's state, with ``length`` 20 and resets) of a 2-layer, 2-head, S=64 checkpoint."""
    from eggroll_torch import random as es_random
    from eggroll_torch import tree
    from eggroll_torch.models import common
    from eggroll_torch.models.llm.checkpoints import rwkv7_state_dict
    from eggroll_torch.noiser.eggroll import EggRoll

    cls = getattr(rwkv7, variant)
    init = cls.load_from_torch(rwkv7_state_dict(3, 2, 2, 64, 50), None, dtype)
    params = tree.map(lambda x: x.to(device), init.params)
    keys = common.simple_es_tree_key(params, es_random.key(4, device=device), init.scan_map)
    frozen, nparams = EggRoll.init_noiser(params, 0.05, 0.01, rank=2, noise_reuse=1)
    members = 4
    iterinfo = (torch.zeros(members, dtype=torch.int32, device=device), torch.arange(members, device=device))
    gen = torch.Generator().manual_seed(5)
    state = cls.default_state(params, None).expand(members, -1, -1, -1)
    results = []
    for length, flags in ((32, None), (20, torch.rand(members, 32, generator=gen) < 0.1)):
        tokens = torch.randint(0, 50, (members, 32), generator=gen).to(device)
        logits, state = cls.forward(EggRoll, frozen, nparams, None, params, keys, iterinfo, tokens, state, length,
                                    None if flags is None else flags.to(device))
        results += [logits, state]
    return results


def assert_forwards_agree(fast, slow, label: str) -> None:
    """Two :func:`population_forward` results (logits and state of each call) agree under the
    ``recurrence`` tolerance."""
    for name, got, expected in zip(("logits 1", "state 1", "logits 2", "state 2"), fast, slow):
        result = compare(got, expected, "recurrence")
        assert result.ok, result.message(f"{label} {name}")


def forward_with_and_without(kernel_module, function: str, dtype, monkeypatch):
    """``(calls, fast, slow)``: :func:`population_forward` (ScanRWKV on CUDA) with every call of
    ``kernel_module.function`` recorded (its positional arguments), then again with the module's
    ``supports`` refusing everything, so the model takes its plain ops."""
    calls = []
    original = getattr(kernel_module, function)
    monkeypatch.setattr(kernel_module, function, lambda *args: calls.append(args) or original(*args))
    fast = population_forward("ScanRWKV", dtype, "cuda")
    monkeypatch.setattr(kernel_module, "supports", lambda *args: False)
    return calls, fast, population_forward("ScanRWKV", dtype, "cuda")


@pytest.mark.cuda
@NEEDS_KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("variant", ["BaseRWKV", "ScanRWKV", "FastRWKV"])
def test_population_forward_dispatches_to_kernel(variant, dtype, monkeypatch):
    """Each layer's recurrence of a noised population forward runs the kernel, and the logits and
    states agree with the same forward on the token loop."""
    from eggroll_torch.models.llm import wkv_triton

    launches = []
    original = wkv_triton.wkv7
    monkeypatch.setattr(wkv_triton, "wkv7", lambda *args, out=None, log_decay=False: launches.append(
        (out is not None, log_decay)) or original(*args, out=out, log_decay=log_decay))
    fast = population_forward(variant, dtype, "cuda")
    assert launches == [(True, True)] * 4, \
        "every layer of both calls runs the kernel, forming the decays and writing its state in place"
    monkeypatch.setattr(rwkv7, "triton_usable", lambda device: False)
    assert_forwards_agree(fast, population_forward(variant, dtype, "cuda"), f"{variant} {dtype}")


def interpreted_checks() -> dict:
    """:data:`INTERPRETED` in float32 and float16 on the CPU (run under ``TRITON_INTERPRET=1``):
    ``{case: {"ok": bool, "detail": str}}``."""
    results = {}
    runs = [(case, dtype, "contiguous") for dtype in (torch.float32, torch.float16) for case in INTERPRETED]
    runs += [(INTERPRETED[1], torch.float32, layout) for layout in ("slice", "expanded")]
    runs += [(case, torch.float32, "into out") for case in INTERPRETED[1:3]]
    runs += [(case, dtype, "log decay") for dtype in (torch.float32, torch.float16) for case in INTERPRETED[:2]]
    for case, dtype, layout in runs:
        comparisons = compare_case(case, dtype, "cpu", rwkv7.BaseRWKV.inner_loop,
                                   layout if layout in ("slice", "expanded") else "contiguous",
                                   into=layout == "into out", log_decay=layout == "log decay")
        results[f"{case} {dtype} {layout}"] = {"ok": all(c.ok for c in comparisons),
                                               "detail": "; ".join(c.message("wkv") for c in comparisons)}
    for dtype in (torch.float32, torch.float16):
        result = decay_case(dtype, "cpu", "float32 exp", count=2 ** 12)
        results[f"decay {dtype}"] = {"ok": result.ok, "detail": result.message("decay")}
    return results


@pytest.mark.skipif(not triton_installed(), reason="triton is not installed (it is optional); "
                                                   "`pip install triton` to check the kernel on the CPU")
def test_kernel_matches_token_loop_interpreted():
    """:func:`interpreted_checks` in a fresh process under Triton's interpreter."""
    run_interpreted(__file__, "interpreted_checks")
