"""``x @ W.T`` (plus an addend) on the CPU through oneDNN when it helps.

torch's CPU matmul goes to MKL, which on some x86 CPUs (AMD EPYC among them) runs well below
the machine's speed; oneDNN's inner product, which torch ships for its compiler
(``torch.ops.mkldnn._linear_pointwise``), computes the same float32 product two to three times
faster there and can fuse an addend into its output. Both are used only for
float32 CPU tensors large enough to gain, after a probe that the op exists and agrees with
``torch.mm``; everything else is plain torch.
"""
from __future__ import annotations

import torch

_MIN_FLOPS = 1 << 22
_PROBE_ERROR = 1e-5


_USABLE: list[bool] = []


def onednn_usable() -> bool:
    """True when oneDNN's linear op exists here and reproduces ``torch.mm`` on a probe.

    Decided once, at the first call outside any functorch transform: under ``vmap`` (where the
    population forward runs) the probe's own ops cannot run, and caching that failure would turn
    oneDNN off for the whole process. Until then the answer is False (plain torch). The
    population forward calls this before it enters ``vmap``.
    """
    if not _USABLE:
        if torch._C._functorch.peek_interpreter_stack() is not None:
            return False
        _USABLE.append(_probe())
    return _USABLE[0]


def _probe() -> bool:
    op = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
    if op is None or not torch.backends.mkldnn.is_available():
        return False
    gen = torch.Generator().manual_seed(0)
    x, w, c = (torch.randn(shape, generator=gen) for shape in ((64, 48), (32, 48), (64, 32)))
    try:
        plain = op(x, w, None, "none", [], "")
        added = op.binary(x, c, w, None, "add")
    except (RuntimeError, AttributeError):
        return False
    expected = x @ w.T
    return _same_product(plain, expected) and _same_product(added, expected + c)


def _same_product(got: torch.Tensor, expected: torch.Tensor) -> bool:
    # A probe that the op is this matmul at all, not a parity check: a 48-term float32 sum in
    # another order moves an entry by a few ulp of the result's scale, a wrong op by O(1).
    return bool((got - expected).abs().max() <= _PROBE_ERROR * expected.abs().max())


def _use_onednn(x: torch.Tensor, weight: torch.Tensor) -> bool:
    # The size first: most calls that are too small to gain are also the ones whose every
    # microsecond of checking shows.
    return (x.shape[0] * weight.numel() >= _MIN_FLOPS and x.device.type == "cpu" and x.dtype == torch.float32
            and weight.dtype == torch.float32 and x.is_contiguous() and onednn_usable())


def linear(x: torch.Tensor, weight: torch.Tensor, *, add: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight.T + add``: x ``(M, in)``, weight ``(out, in)``, add ``(M, out)`` or None.

    The addend is added to the rounded product, as ``x @ weight.T + add`` would. A new tensor
    is returned.
    """
    if _use_onednn(x, weight):
        op = torch.ops.mkldnn._linear_pointwise
        if add is None:
            return op(x, weight.contiguous(), None, "none", [], "")
        return op.binary(x, add.contiguous(), weight.contiguous(), None, "add")
    out = torch.mm(x, weight.t())
    if add is not None:
        out += add
    return out
