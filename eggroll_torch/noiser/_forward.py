"""Forward passes with a member's noise, parameterised by the noise function they draw it with.

``iterinfo is None`` always means the unperturbed model. One member per call, as upstream:
``x (..., in)``; or a whole population at once: ``x (N, ..., in)`` -> ``(N, ..., out)``, member
``n`` multiplied by its own noise.
"""
from __future__ import annotations

import torch

from ..random.triton_support import triton_usable
from ._member import as_members, lora_sigma


def matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x @ w`` after promoting both to a common dtype, as ``jnp.matmul`` does."""
    dtype = torch.promote_types(x.dtype, w.dtype)
    return torch.matmul(x.to(dtype), w.to(dtype))


def check_member_axis(x: torch.Tensor, population_size: int, name: str = "x") -> None:
    """A population input must lead with the member axis ``N``."""
    if x.ndim < 2 or x.shape[0] != population_size:
        raise ValueError(
            f"{name} must have shape (N={population_size}, ..., in) for a population iterinfo; "
            f"got {tuple(x.shape)}. Give each member its own input row (x[n] for member n)"
        )


def member_matmul(x: torch.Tensor, w: torch.Tensor, population: bool) -> torch.Tensor:
    """``x @ w`` per member: ``x (N, ..., k)`` with ``w (N, k, m)``, or plain ``x @ w`` for one member."""
    if not population:
        return matmul(x, w)
    rows = x.reshape(x.shape[0], -1, x.shape[-1])
    return matmul(rows, w).reshape(*x.shape[:-1], w.shape[-1])


def low_rank_mm(lora_fn, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x, *, transposed):
    """``x @ param.T + x @ B @ A.T`` (``do_mm``, ``param (out, in)``) or ``x @ param + x @ A @ B.T``
    (``do_Tmm``, ``param (in, out)``), factors from ``lora_fn`` at ``sigma / sqrt(rank)``; two
    matmuls through the rank dimension, never forming ``A @ B.T``.

    For a population the shared product is one GEMM over all members' rows and the second
    rank-dimension products are added to it by :func:`add_low_rank_product`.
    """
    base = matmul(x, param if transposed else param.T)
    if iterinfo is None:
        return base
    members = as_members(iterinfo, param.device)
    if members.population:
        check_member_axis(x, members.shape[0])
    sigma = lora_sigma(noiser_params["sigma"], frozen_noiser_params["rank"], param.dtype, param.device)
    A, B = lora_fn(frozen_noiser_params, sigma, iterinfo, param, base_key)
    first, second = (A, B) if transposed else (B, A)
    if members.population:
        return add_low_rank_product(base, x, first, second.transpose(-1, -2))
    return base + matmul(matmul(x, first), second.transpose(-1, -2))


def _own_kernels(out: torch.Tensor) -> bool:
    """Whether the member products go through :mod:`.lowrank_triton`: on CUDA with Triton, unless
    torch.compile is tracing, where the plain ops let inductor fuse the rank-``r`` products into the
    elementwise kernels around them (a Triton kernel of ours is opaque to it)."""
    return out.is_cuda and triton_usable(out.device) and not torch.compiler.is_compiling()


def add_low_rank_product(out: torch.Tensor, x: torch.Tensor, first: torch.Tensor, right: torch.Tensor
                         ) -> torch.Tensor:
    """``out + (x @ first) @ right`` per member, both products rounded as the reference rounds
    them: ``out (N, ..., m)`` (a fresh result the caller gives up), ``x (N, ..., k)``, ``first
    (N, k, r)``, ``right (N, r, m)``.

    On CUDA with Triton (outside torch.compile), few rows (a token step's one per member) go
    through one kernel that also forms ``x @ first``
    (:func:`.lowrank_triton.add_projected_product_`); otherwise ``x @ first`` is a batched matmul
    and :func:`add_member_product` adds the rest.
    """
    if _own_kernels(out):
        from . import lowrank_triton

        if lowrank_triton.supports_projected(out, x, first, right):
            return lowrank_triton.add_projected_product_(out, x, first, right)
    return add_member_product(out, member_matmul(x, first, True), right)


def add_member_product(out: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """``out + left @ right`` per member, rounded as the reference rounds it (the product, then
    the sum): ``out (N, ..., m)`` (a fresh result the caller gives up), ``left (N, ..., r)``,
    ``right (N, r, m)``.

    On CUDA with Triton (outside torch.compile) the product is added into ``out`` in place in one
    pass (:mod:`.lowrank_triton`); elsewhere it is formed and added.
    """
    if _own_kernels(out):
        from . import lowrank_triton

        if lowrank_triton.supports(out, left, right):
            return lowrank_triton.add_member_product_(out, left, right)
    return out + member_matmul(left, right, True)


def full_mm(noise_fn, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x, *, transposed):
    """``x @ (param + noise).T`` (``do_mm``) or ``x @ (param + noise)`` (``do_Tmm``), full-rank noise
    from ``noise_fn``; the noisy matrix is formed explicitly."""
    if iterinfo is None:
        return matmul(x, param if transposed else param.T)
    members = as_members(iterinfo, param.device)
    if members.population:
        check_member_axis(x, members.shape[0])
    noisy = param + noise_fn(frozen_noiser_params, noiser_params["sigma"], iterinfo, param, base_key)
    return member_matmul(x, noisy if transposed else noisy.transpose(-1, -2), members.population)


def noisy_standard(noise_fn, frozen_noiser_params, noiser_params, param, base_key, iterinfo):
    """``param + noise_fn(sigma)``: ``(*M, *shape)``; ``param`` itself (no member axis) when
    unperturbed or ``freeze_nonlora``."""
    if iterinfo is None or frozen_noiser_params["freeze_nonlora"]:
        return param
    return param + noise_fn(frozen_noiser_params, noiser_params["sigma"], iterinfo, param, base_key)

