"""The perturbed forward of one linear layer for a whole population, without weight copies.

Member ``n`` (pair ``p = n // 2``, sign ``s_n = +1`` for even ``n``, ``-1`` for odd) computes
``y_n = act(x_n @ W.T + (s_n * (x_n @ B_p)) @ (c * A_p).T + bias_n)`` with
``c = sigma / sqrt(rank)`` rounded to the weights' dtype: upstream's ``do_mm``, whose ``A`` carries
``s_n * c``, with the exact sign flip moved to the projection so that a pair shares ``c * A_p``.
The population's rows are stacked: ``x`` is ``(M, in)`` with ``M = N * T`` (member ``n``
owns rows ``n*T .. n*T + T - 1``), so ``x @ W.T`` is ONE matmul, exactly the work of batched
inference, and the noise adds two thin matmuls through the rank dimension.

Factors of a layer live in one ``(P, r, in + out)`` tensor ``F``: ``F[p, k, j]`` is entry
``(j, k)`` of the pair's ``normal(key, (in + out, r))`` draw, so ``B_p.T = F[p, :, :in]`` and
``A_p.T = F[p, :, in:]``. This layout makes both the forward reads and the update's
``(P * r, features)`` matrices plain views.

On CUDA with Triton (and for row counts it supports) the projection and the fused correction +
activation run as the kernels of :mod:`.lowrank_kernels`; otherwise as torch ops.
"""
from __future__ import annotations

import torch

from eggroll_torch.random.triton_support import triton_usable
from .cpu_linear import linear

_FUSED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def member_signs(num_members: int, device) -> torch.Tensor:
    """``s_n``: ``+1`` for even ``n``, ``-1`` for odd, ``(N,)`` float32."""
    return (1.0 - 2.0 * (torch.arange(num_members, device=device) % 2)).to(torch.float32)


def lora_scale(sigma: float, rank: int, dtype: torch.dtype) -> float:
    """``sigma / sqrt(rank)`` as upstream computes it (float32), then rounded to ``dtype``."""
    base = torch.tensor(sigma, dtype=torch.float32) / torch.tensor(float(rank), dtype=torch.float32).sqrt()
    return float(base.to(dtype))


def split_factors(factors: torch.Tensor, in_features: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B.T, A.T)`` views ``(P, r, in)`` and ``(P, r, out)`` of a ``(P, r, in + out)`` factor tensor."""
    return factors[:, :, :in_features], factors[:, :, in_features:]


def fused_available(x: torch.Tensor, rows_per_member: int) -> bool:
    """True when :func:`project` and :func:`perturbed_linear` can use the Triton kernels."""
    if not triton_usable(x.device) or x.dtype not in _FUSED_DTYPES:
        return False
    from .lowrank_kernels import block_rows

    return block_rows(rows_per_member) is not None


def _pairs_view(t: torch.Tensor, num_pairs: int) -> torch.Tensor:
    return t.reshape(num_pairs, -1, t.shape[-1])


def project(x: torch.Tensor, b_t: torch.Tensor, *, rows_per_member: int, fused: bool = False) -> torch.Tensor:
    """``x @ B_p`` for every row: ``x`` ``(M, in)``, ``b_t`` ``(P, r, in)`` -> ``(M, r)`` float32."""
    if fused:
        from .lowrank_kernels import launch_projection

        out = torch.empty(x.shape[0], b_t.shape[1], dtype=torch.float32, device=x.device)
        launch_projection(x, b_t, out, rows_per_member=rows_per_member)
        return out
    xb = torch.bmm(_pairs_view(x, b_t.shape[0]), b_t.transpose(1, 2))
    return xb.reshape(x.shape[0], -1).float()


def _check_layer(x, weight, a_t, xb, signs, rows_per_member):
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"x must be (M, in) and weight (out, in) with the same in; got {tuple(x.shape)} and {tuple(weight.shape)}"
        )
    if rows_per_member < 1 or x.shape[0] % rows_per_member:
        raise ValueError(f"x has {x.shape[0]} rows, not a multiple of rows_per_member={rows_per_member}")
    members = x.shape[0] // rows_per_member
    if members % 2:
        raise ValueError(f"the population must have an even size (antithetic pairs); got N={members}")
    if a_t.shape != (members // 2, a_t.shape[1], weight.shape[0]):
        raise ValueError(
            f"a_t must be (P={members // 2}, r, out={weight.shape[0]}); got {tuple(a_t.shape)}"
        )
    if xb.shape != (x.shape[0], a_t.shape[1]) or signs.shape != (members,):
        raise ValueError(
            f"xb must be (M={x.shape[0]}, r={a_t.shape[1]}) and signs (N={members},); "
            f"got {tuple(xb.shape)} and {tuple(signs.shape)}"
        )


def perturbed_linear(x: torch.Tensor, weight: torch.Tensor, a_t: torch.Tensor, xb: torch.Tensor,
                     signs: torch.Tensor, a_scale: float, *, rows_per_member: int, activation: str = "identity",
                     bias: torch.Tensor | None = None, b_next_t: torch.Tensor | None = None,
                     row_sums: bool = False, fused: bool = False):
    """One perturbed layer for all members, optionally projecting its output for the next layer.

    x: ``(M, in)``; weight: ``(out, in)``; a_t: ``(P, r, out)`` unit normals; xb: ``(M, r)``
    float32 from :func:`project`; signs: ``(N,)`` from :func:`member_signs`; a_scale: from
    :func:`lora_scale`; bias: ``(out,)`` shared or ``(N, out)`` per member; b_next_t: the next
    layer's ``(P, r', out)``. Returns ``(y, xb_next, sums)``: ``y`` ``(M, out)`` (None when only
    ``row_sums`` is wanted from the fused kernel), ``xb_next`` ``(M, r')`` float32 or None, and
    ``sums`` ``(M,)`` float32 row sums of ``y`` or None.
    """
    _check_layer(x, weight, a_t, xb, signs, rows_per_member)
    if fused and bias is None:
        from .lowrank_kernels import launch_correction

        h = torch.mm(x, weight.T)
        sums = torch.empty(x.shape[0], dtype=torch.float32, device=x.device) if row_sums else None
        keep_y = not row_sums or b_next_t is not None
        launch_correction(h, h if keep_y else None, xb, signs, a_scale, a_t, rows_per_member=rows_per_member,
                          activation=activation, rowsum=sums)
        xb_next = None if b_next_t is None else project(h, b_next_t, rows_per_member=rows_per_member, fused=True)
        return (h if keep_y else None), xb_next, sums
    members = x.shape[0] // rows_per_member
    signed = (xb.view(members, rows_per_member, -1) * signs[:, None, None]).to(x.dtype)
    # The correction is rounded before it is added, as upstream adds x @ B @ A.T to x @ W.T.
    correction = torch.bmm(_pairs_view(signed, a_t.shape[0]), a_t * a_scale).view(x.shape[0], -1)
    if bias is None:
        y = linear(x, weight, add=correction, activation=activation)
    else:
        y = linear(x, weight, add=correction)
        y.view(members, rows_per_member, -1).add_(bias if bias.ndim == 1 else bias[:, None, :])
        y = _activate_(y, activation)
    xb_next = None if b_next_t is None else project(y, b_next_t, rows_per_member=rows_per_member)
    sums = y.sum(1, dtype=torch.float32) if row_sums else None
    return y, xb_next, sums


def _activate_(h: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "tanh":
        return h.tanh_()
    if activation == "relu":
        return h.relu_()
    if activation == "identity":
        return h
    raise ValueError(f"activation must be 'tanh', 'relu' or 'identity'; got {activation!r}")

