"""A member's noisy layers as custom ops whose ``vmap`` rule computes the whole population at once.

Inside the population's ``torch.func.vmap`` over members, each member would otherwise run
``x @ W.T + (x @ B) @ A.T + bias`` op by op, and vmap's generic batching turns the member's bias
and LayerNorm affine into broadcast passes over the activations. These ops carry the member
index instead; their vmap rule sees all N members and runs what a population needs:

- :func:`lowrank_linear`: one shared ``(rows, in) @ (in, out)`` GEMM whose epilogue adds the
  low-rank correction, the correction being one batched matmul per antithetic pair through the
  rank dimension, with each member's bias folded into it as extra rank columns (precomputed
  once per population by :meth:`.engine.PairEngine.forward_noise`).
- :func:`member_matmul`: the same for a matrix used as ``x @ W`` (upstream's ``do_Tmm``): one
  shared GEMM plus one batched matmul per pair through the rank dimension.
- :func:`member_layer_norm`: every row normalised and given its member's ``weight`` and
  ``bias`` in one pass (a Triton kernel on CUDA, :mod:`.member_kernels`; a C one for float32 on
  the CPU, :mod:`.member_norm_cpu`; elsewhere the normalisation of all rows, then the affine in
  one broadcast pass).

Member ``m`` (a 0-d int64 tensor) belongs to pair ``m // 2`` of the draws and has sign
``+1`` for even ``m``, ``-1`` for odd. Outside a population vmap (a single member, or another
vmap level around the call) the ops compute exactly that definition with plain torch ops.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from eggroll_torch.fast.cpu_linear import linear as cpu_linear
from eggroll_torch.random.triton_support import triton_usable

from . import member_norm_cpu

_KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _pair_and_sign(member: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    pair = torch.div(member, 2, rounding_mode="floor").reshape(1)
    sign = (1 - 2 * (member % 2)).to(dtype)
    return pair, sign


def member_value(shared: torch.Tensor, noise: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
    """``shared + s_m * noise[m // 2]``: a ``PARAM``'s value for member ``member`` (``noise`` is
    the sigma-scaled pair noise ``(P, *shape)``, rounded as the functional layer rounds it)."""
    pair, sign = _pair_and_sign(member, shared.dtype)
    return shared + sign * noise.index_select(0, pair)[0]


@torch.library.custom_op("eggroll_torch::lowrank_linear", mutates_args=())
def lowrank_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, bias_noise: torch.Tensor | None,
                   B: torch.Tensor, rows: torch.Tensor, member: torch.Tensor, bias_columns: int) -> torch.Tensor:
    """Member ``m``'s ``x @ W.T + (s_m * (x @ B_p)) @ A_p.T + bias_m`` with ``p = m // 2``.

    x: ``(..., in)``; weight: ``(out, in)``; bias: ``(out,)`` or None; bias_noise: ``(P, out)``
    sigma-scaled noise of the bias or None; B: ``(P, in, r)`` unit normals; rows: ``(P, K, out)``
    whose first ``r`` rows are ``A_p.T`` (``sigma / sqrt(r)`` applied) and whose next
    ``bias_columns`` rows hold the bias (both members' values when it is noisy): the population
    rule reads the bias from there; member: 0-d int64.
    """
    return _single_linear(x, weight, bias, bias_noise, B, rows, member, bias_columns)


def _single_linear(x, weight, bias, bias_noise, B, rows, member, bias_columns):
    pair, sign = _pair_and_sign(member, x.dtype)
    projected = (x @ B.index_select(0, pair)[0]) * sign
    out = x @ weight.T + projected @ rows.index_select(0, pair)[0, :B.shape[-1]]
    if bias is None:
        return out
    return out + (bias if bias_noise is None else member_value(bias, bias_noise, member))


@lowrank_linear.register_fake
def _(x, weight, bias, bias_noise, B, rows, member, bias_columns):
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


def population_linear(x, weight, bias, bias_noise, B, rows, members: int, bias_columns: int):
    """All members at once: ``x`` ``(N, *rows, in)`` -> ``(N, *rows, out)``."""
    pairs, per_member, rank = members // 2, math.prod(x.shape[1:-1]), B.shape[-1]
    flat = x.reshape(members * per_member, x.shape[-1])
    # Left operand of the correction: s_m * (x @ B_p) in the first r columns, then a one in the
    # member's bias column (the rows of A hold each member's bias there), then zeros.
    projected = torch.bmm(flat.view(pairs, 2 * per_member, -1), B)
    member_bias = None
    if bias is not None and bias_columns == 0:
        member_bias = bias if bias_noise is None else torch.stack([bias + bias_noise, bias - bias_noise], 1)
        member_bias = member_bias.reshape(-1, 1, weight.shape[0])
    if flat.device.type == "cpu":
        # Signs and bias columns come from small constant tensors (the products with +-1 are
        # exact), a few ops instead of a fill and strided writes per call. The correction
        # accumulates into the product in place: a separate (N * rows, out) correction would be
        # a second output-sized buffer, whose allocation and extra pass cost more on the CPU
        # than the rank-r product itself.
        signs, columns = _left_constants(rows.shape[1] - rank, bias_columns, x.dtype, pairs, per_member)
        left = torch.cat([projected * signs, columns], -1)
        out = cpu_linear(flat.contiguous(), weight)
        out.view(pairs, 2 * per_member, -1).baddbmm_(left, rows)
        if member_bias is not None:
            out.view(members, per_member, -1).add_(member_bias)
        if x.dim() == 2:
            return out
    else:
        left = x.new_zeros(pairs, 2, per_member, rows.shape[1])
        left[..., :rank] = projected.view(pairs, 2, per_member, rank)
        left[:, 1, :, :rank].neg_()
        if bias_columns == 1:
            left[..., rank] = 1
        elif bias_columns == 2:
            left[:, 0, :, rank] = 1
            left[:, 1, :, rank + 1] = 1
        out = torch.bmm(left.view(pairs, 2 * per_member, -1), rows).view(members * per_member, -1)
        if member_bias is not None:
            out.view(members, per_member, -1).add_(member_bias)
        out.addmm_(flat, weight.T)
    return out.view(*x.shape[:-1], weight.shape[0])


_LEFT_CONSTANTS: dict = {}
# Bias-column blocks up to this many elements are kept whole, for a contiguous (fast) cat; the
# cache is emptied past _MAX_LEFT_CONSTANTS shapes (varying input lengths).
_WHOLE_COLUMNS_MAX = 1 << 16
_MAX_LEFT_CONSTANTS = 32


def _left_constants(width: int, bias_columns: int, dtype: torch.dtype, pairs: int,
                    per_member: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU tensors for a pair's ``2 * per_member`` rows (the even member's, then the odd one's):
    their signs ``(1, 2 * per_member, 1)`` and the ``width`` columns after the rank ones
    ``(pairs, 2 * per_member, width)`` (a one in each member's bias column, zeros elsewhere;
    contiguous when small, else an expanded view)."""
    key = (width, bias_columns, dtype, pairs, per_member)
    found = _LEFT_CONSTANTS.get(key)
    if found is None:
        signs = torch.tensor([1.0, -1.0], dtype=dtype).repeat_interleave(per_member).view(1, -1, 1)
        columns = torch.zeros(1, 2, 1, width, dtype=dtype)
        if bias_columns == 1:
            columns[..., 0] = 1
        elif bias_columns == 2:
            columns[:, 0, :, 0] = 1
            columns[:, 1, :, 1] = 1
        columns = columns.expand(pairs, 2, per_member, width).reshape(pairs, 2 * per_member, width)
        if len(_LEFT_CONSTANTS) >= _MAX_LEFT_CONSTANTS:
            _LEFT_CONSTANTS.clear()
        found = signs, columns
        if columns.numel() <= _WHOLE_COLUMNS_MAX:
            _LEFT_CONSTANTS[key] = found
    return found


def _is_population_level(member_dim, *other_dims) -> bool:
    return member_dim is not None and all(d is None for d in other_dims)


@lowrank_linear.register_vmap
def _(info, in_dims, x, weight, bias, bias_noise, B, rows, member, bias_columns):
    x_dim, w_dim, b_dim, n_dim, B_dim, r_dim, m_dim, _ = in_dims
    if _is_population_level(m_dim, w_dim, b_dim, n_dim, B_dim, r_dim):
        x = x.expand(info.batch_size, *x.shape) if x_dim is None else x.movedim(x_dim, 0)
        return population_linear(x, weight, bias, bias_noise, B, rows, info.batch_size, bias_columns), 0
    if x_dim is not None and all(d is None for d in (w_dim, b_dim, n_dim, B_dim, r_dim, m_dim)):
        # Another vmap level that only maps x: its axis is one more row axis.
        return lowrank_linear(x.movedim(x_dim, 0), weight, bias, bias_noise, B, rows, member, bias_columns), 0
    return torch.vmap(_single_linear, in_dims=in_dims)(x, weight, bias, bias_noise, B, rows, member, bias_columns), 0


@torch.library.custom_op("eggroll_torch::member_matmul", mutates_args=())
def member_matmul(x: torch.Tensor, weight: torch.Tensor, B: torch.Tensor, rows: torch.Tensor,
                  member: torch.Tensor) -> torch.Tensor:
    """Member ``m``'s ``x @ W + (s_m * (x @ A_p)) @ B_p.T`` with ``p = m // 2``: upstream's
    ``do_Tmm``, a matrix stored ``(in, out)`` and used as ``x @ W`` (``transformers``' ``Conv1D``).

    x: ``(..., in)``; weight: ``(in, out)``; B: ``(P, out, r)`` unit normals; rows:
    ``(P, K, in)`` whose first ``r`` rows are ``A_p.T`` (see :func:`lowrank_linear`; the matrix's
    first axis is ``A``'s); member: 0-d int64.
    """
    return _single_matmul(x, weight, B, rows, member)


def _single_matmul(x, weight, B, rows, member):
    pair, sign = _pair_and_sign(member, x.dtype)
    projected = (x @ rows.index_select(0, pair)[0, :B.shape[-1]].T) * sign
    return x @ weight + projected @ B.index_select(0, pair)[0].T


@member_matmul.register_fake
def _(x, weight, B, rows, member):
    return x.new_empty((*x.shape[:-1], weight.shape[1]))


@member_matmul.register_vmap
def _(info, in_dims, x, weight, B, rows, member):
    x_dim, w_dim, B_dim, r_dim, m_dim = in_dims
    if _is_population_level(m_dim, w_dim, B_dim, r_dim):
        members = info.batch_size
        x = x.expand(members, *x.shape) if x_dim is None else x.movedim(x_dim, 0)
        pairs, per_member, rank = members // 2, math.prod(x.shape[1:-1]), B.shape[-1]
        flat = x.reshape(members * per_member, x.shape[-1])
        projected = torch.bmm(flat.view(pairs, 2 * per_member, -1), rows[:, :rank].transpose(1, 2))
        projected.view(pairs, 2, per_member, rank)[:, 1].neg_()
        correction = torch.bmm(projected, B.transpose(1, 2)).view(members * per_member, -1)
        out = correction.addmm_(flat, weight)
        return out.view(*x.shape[:-1], weight.shape[1]), 0
    if x_dim is not None and all(d is None for d in (w_dim, B_dim, r_dim, m_dim)):
        return member_matmul(x.movedim(x_dim, 0), weight, B, rows, member), 0
    return torch.vmap(_single_matmul, in_dims=in_dims)(x, weight, B, rows, member), 0


@torch.library.custom_op("eggroll_torch::member_layer_norm", mutates_args=())
def member_layer_norm(x: torch.Tensor, normalized_shape: list[int], weight: torch.Tensor | None,
                      weight_noise: torch.Tensor | None, bias: torch.Tensor | None, bias_noise: torch.Tensor | None,
                      member: torch.Tensor, eps: float) -> torch.Tensor:
    """``F.layer_norm`` with member ``m``'s weight and bias (``shared + s_m * noise[m // 2]``
    where a noise is given, the shared tensor where not)."""
    return _single_layer_norm(x, normalized_shape, weight, weight_noise, bias, bias_noise, member, eps)


def _single_layer_norm(x, normalized_shape, weight, weight_noise, bias, bias_noise, member, eps):
    if weight is not None and weight_noise is not None:
        weight = member_value(weight, weight_noise, member)
    if bias is not None and bias_noise is not None:
        bias = member_value(bias, bias_noise, member)
    return F.layer_norm(x, normalized_shape, weight, bias, eps)


@member_layer_norm.register_fake
def _(x, normalized_shape, weight, weight_noise, bias, bias_noise, member, eps):
    return torch.empty_like(x)


def _members_of(shared, noise, members: int, shape) -> torch.Tensor | None:
    """``(N, 1, *shape)`` per-member values, or the shared tensor, or None."""
    if shared is None:
        return None
    if noise is None:
        return shared
    return torch.stack([shared + noise, shared - noise], dim=1).reshape(members, 1, *shape)


@member_layer_norm.register_vmap
def _(info, in_dims, x, normalized_shape, weight, weight_noise, bias, bias_noise, member, eps):
    x_dim, _, w_dim, wn_dim, b_dim, bn_dim, m_dim, _ = in_dims
    if _is_population_level(m_dim, w_dim, wn_dim, b_dim, bn_dim):
        members = info.batch_size
        x = x.expand(members, *x.shape) if x_dim is None else x.movedim(x_dim, 0)
        width = math.prod(normalized_shape)
        kernel = None
        if triton_usable(x.device) and x.dtype in _KERNEL_DTYPES and x.numel():
            from .member_kernels import member_layer_norm_rows as kernel
        elif (x.device.type == "cpu" and x.numel() and member_norm_cpu.library() is not None
              and all(t is None or t.dtype == torch.float32 for t in (x, weight, weight_noise, bias, bias_noise))):
            kernel = member_norm_cpu.member_layer_norm_rows
        if kernel is not None:
            flat = x.reshape(-1, width).contiguous()
            w, b = (None if t is None else t.reshape(width) for t in (weight, bias))
            w_noise, b_noise = (None if t is None else t.reshape(-1, width) for t in (weight_noise, bias_noise))
            out = kernel(flat, flat.shape[0] // members, w, w_noise, b, b_noise, eps)
            return out.view(x.shape), 0
        normed = F.layer_norm(x, normalized_shape, None, None, eps)
        grouped = normed.reshape(members, -1, *normalized_shape)
        w = _members_of(weight, weight_noise, members, normalized_shape)
        b = _members_of(bias, bias_noise, members, normalized_shape)
        if w is not None and b is not None:
            out = torch.addcmul(b, grouped, w)
        elif w is not None:
            out = grouped * w
        elif b is not None:
            out = grouped + b
        else:
            out = grouped
        return out.reshape(x.shape), 0
    if x_dim is not None and all(d is None for d in (w_dim, wn_dim, b_dim, bn_dim, m_dim)):
        return member_layer_norm(x.movedim(x_dim, 0), normalized_shape, weight, weight_noise, bias, bias_noise,
                                 member, eps), 0
    return torch.vmap(_single_layer_norm, in_dims=in_dims)(
        x, normalized_shape, weight, weight_noise, bias, bias_noise, member, eps), 0
