"""Sparse: each member perturbs ``k = max(a, b)`` random entries of every weight matrix.

Per member the key is split in two: entry indices ``floor(uniform(key1, (k,)) * a * b)``
(row ``// b``, column ``% b``) and values ``+-sigma * normal(key2, (k,))``. The matrix update
scatter-adds the fitness-weighted values, averages over members and scales by ``k / (a * b)``.
"""
from __future__ import annotations

import torch

from .. import random
from ..numerics import default_float_dtype, mean, weak_scalar
from . import _estimators, _forward, _update
from ._es_noiser import ESNoiser
from ._gaussian import get_lora_update_params, get_nonlora_update_params, inner_shape
from ._member import antithetic_sigma, as_members, broadcast_members, member_keys

__all__ = ["Sparse", "get_lora_update_params", "get_nonlora_update_params", "get_sparse_update_params"]


def get_sparse_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key):
    """``(values, idx_a, idx_b)``, each ``(*S, *M, k)``: signed values in ``param.dtype`` and
    int32 row / column indices into the ``(a, b)`` matrix."""
    members = as_members(iterinfo, param.device)
    a, b = inner_shape(param, key)
    k = max(a, b)
    keys = random.split(member_keys(frozen_noiser_params["noise_reuse"], members, key.to(param.device)), 2)
    uniforms = random.uniform(keys[..., 0, :], (k,), dtype=default_float_dtype(param.dtype))
    joint = torch.floor(uniforms * weak_scalar(a * b, uniforms)).to(torch.int32)
    values = random.normal(keys[..., 1, :], (k,), dtype=param.dtype)
    values = values * broadcast_members(antithetic_sigma(base_sigma, members, param.dtype), 1)
    return values, torch.div(joint, b, rounding_mode="floor"), joint % b


def _simple_full_update(base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """``mean_n(f_n * noise_n)`` for a ``PARAM`` leaf (zeros with ``freeze_nonlora``)."""
    return _estimators.nonlora_gradient(get_nonlora_update_params, base_sigma, param, key, scores, iterinfo,
                                        frozen_noiser_params)


def _scatter_add_last(target: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``target.at[..., index].add(values)`` with JAX's scatter rules: values cast to the
    target's dtype, out-of-range indices dropped."""
    size = target.shape[-1]
    inside = (index >= 0) & (index < size)
    values = torch.where(inside, values.to(target.dtype), torch.zeros((), dtype=target.dtype, device=target.device))
    return target.scatter_add(-1, torch.where(inside, index, 0).to(torch.int64), values)


def _simple_sparse_update(base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """``mean_n(f_n * E_n) * k / (a * b)`` with ``E_n`` member ``n``'s sparse noise matrix."""
    values, idx_a, idx_b = get_sparse_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key)
    a, b = inner_shape(param, key)
    k = values.shape[-1]
    weighted = broadcast_members(scores, 1) * values
    flat_index = idx_a.to(torch.int64) * b + idx_b
    flat_index = torch.where(idx_a < a, flat_index, a * b)
    zeros = torch.zeros(weighted.shape[:-1] + (a * b,), dtype=param.dtype, device=param.device)
    matrices = _scatter_add_last(zeros, flat_index, weighted).reshape(weighted.shape[:-1] + (a, b))
    averaged = mean(matrices, _estimators.member_axis(key))
    return averaged * weak_scalar(k / (a * b), averaged)


def _simple_lora_update(base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """EGGROLL's low-rank estimate (defined upstream in this module but not used by ``Sparse``)."""
    return _estimators.low_rank_gradient(get_lora_update_params, base_sigma, param, key, scores, iterinfo,
                                         frozen_noiser_params)


_noop_update = _estimators.zero_gradient


def _sparse_mm(frozen_noiser_params, noiser_params, param, base_key, iterinfo, x, *, transposed):
    """Plain product plus ``out[..., idx_a] += x[..., idx_b] * values`` per member.

    Upstream applies this to one member's 1-D input; here it acts on the last axis of ``x``,
    which is the same for 1-D inputs and extends it to batched ones. As upstream, ``do_Tmm``
    reuses the ``(a, b)`` indices of ``param (in, out)`` unchanged: gathered indices past the
    input are clamped (JAX's gather) and scattered ones past the output dropped (JAX's scatter).
    """
    base = _forward.matmul(x, param if transposed else param.T)
    if iterinfo is None:
        return base
    members = as_members(iterinfo, param.device)
    values, idx_a, idx_b = get_sparse_update_params(frozen_noiser_params, noiser_params["sigma"], iterinfo, param,
                                                    base_key)
    if members.population:
        _forward.check_member_axis(x, members.shape[0])
        rows_x = x.reshape(x.shape[0], -1, x.shape[-1])
        rows_out = base.reshape(base.shape[0], -1, base.shape[-1])
        expand = (rows_x.shape[0], rows_x.shape[1], values.shape[-1])
        idx_a, idx_b, values = (t[:, None, :].expand(expand) for t in (idx_a, idx_b, values))
    else:
        rows_x = x.reshape(-1, x.shape[-1])
        rows_out = base.reshape(-1, base.shape[-1])
        expand = (rows_x.shape[0], values.shape[-1])
        idx_a, idx_b, values = (t.expand(expand) for t in (idx_a, idx_b, values))
    gathered = torch.gather(rows_x, -1, idx_b.clamp(max=rows_x.shape[-1] - 1).to(torch.int64))
    products = gathered * values
    return _scatter_add_last(rows_out, idx_a, products).reshape(base.shape)


class Sparse(ESNoiser):
    """Antithetic ES with ``max(a, b)``-sparse matrix noise."""

    update_fns = (_simple_full_update, _simple_sparse_update, _noop_update, _noop_update)
    noise_fn = staticmethod(get_nonlora_update_params)

    @classmethod
    def init_noiser(cls, params, sigma, lr, *args, solver=None, solver_kwargs=None, group_size=0,
                    freeze_nonlora=False, noise_reuse=0, rank=1, q_multiplier=1, **kwargs):
        """Returns ``(frozen_noiser_params, noiser_params)``; frozen has ``group_size``,
        ``freeze_nonlora``, ``noise_reuse``, ``solver`` and ``q_multiplier`` (stored, unused, as
        upstream; ``rank`` is accepted and ignored)."""
        _update.check_init(sigma, group_size, noise_reuse, rank)
        solver_ = _update.build_solver(lr, solver, solver_kwargs)
        frozen = {"group_size": group_size, "freeze_nonlora": freeze_nonlora, "noise_reuse": noise_reuse,
                  "solver": solver_, "q_multiplier": q_multiplier}
        return frozen, {"sigma": sigma, "opt_state": solver_.init(params)}

    @classmethod
    def do_mm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ param.T`` plus the member's sparse perturbation; ``param (out, in)``."""
        return _sparse_mm(frozen_noiser_params, noiser_params, param, base_key, iterinfo, x, transposed=False)

    @classmethod
    def do_Tmm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ param`` plus the sparse perturbation with upstream's index use (see ``_sparse_mm``)."""
        return _sparse_mm(frozen_noiser_params, noiser_params, param, base_key, iterinfo, x, transposed=True)
