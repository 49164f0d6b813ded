"""Sparse: each member perturbs ``k = max(a, b)`` random entries of every weight matrix.

Per member and matrix ``(a, b)``, the member key is split in two: the first draws ``k`` flat
indices ``floor(uniform(k) * a * b)`` (row ``// b``, column ``% b``; with replacement; float32
uniforms, so for ``a * b`` beyond 2**24 not every entry is reachable), the second ``k`` normal
values times ``+-sigma``. Non-matrix parameters get EGGROLL's full noise. The matrix update
scatter-adds the fitness-weighted values, averages over members and scales by ``k / (a * b)``.
"""
from __future__ import annotations

import torch

from .. import random
from ..numerics import default_float_dtype, mean, weak_scalar
from . import _estimators, _forward, _update
from ._es_noiser import ESNoiser
from ._gaussian import get_lora_update_params, get_nonlora_update_params, inner_shape
from ._member import antithetic_sigma, as_members, broadcast_members, member_key

__all__ = ["Sparse", "get_lora_update_params", "get_nonlora_update_params", "get_sparse_update_params"]


def get_sparse_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key):
    """``(values, rows, cols)``, each ``(*S, *M, k)``: signed values in ``param.dtype`` and
    int32 row / column indices into the ``(a, b)`` matrix."""
    members = as_members(iterinfo, param.device)
    a, b = inner_shape(param, key)
    k = max(a, b)
    keys = random.split(member_key(frozen_noiser_params["noise_reuse"], members, key.to(param.device)), 2)
    uniforms = random.uniform(keys[..., 0, :], (k,), dtype=default_float_dtype(param.dtype))
    joint = torch.floor(uniforms * weak_scalar(a * b, uniforms)).to(torch.int32)
    values = random.normal(keys[..., 1, :], (k,), dtype=param.dtype)
    values = values * broadcast_members(antithetic_sigma(base_sigma, members, param.dtype), 1)
    return values, torch.div(joint, b, rounding_mode="floor"), joint % b


def _scatter_add(target: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``target.at[..., index].add(values)`` with JAX's scatter rules: values cast to the
    target's dtype, out-of-range indices dropped."""
    size = target.shape[-1]
    inside = (index >= 0) & (index < size)
    values = torch.where(inside, values.to(target.dtype), torch.zeros((), dtype=target.dtype, device=target.device))
    return target.scatter_add(-1, torch.where(inside, index, 0).to(torch.int64), values)


def _sparse_mm(sparse_fn, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x, *, transposed):
    """Plain product plus ``out[..., rows] += x[..., cols] * values`` per member, the sparse
    perturbation drawn by ``sparse_fn``.

    Upstream applies this to one member's 1-D input; here it acts on the last axis of ``x``,
    which is the same for 1-D inputs and extends it to batched ones. As upstream, ``do_Tmm``
    reuses the ``(a, b)`` indices of ``param (in, out)`` unchanged: gathered indices past the
    input are clamped (JAX's gather) and scattered ones past the output dropped (JAX's scatter).
    """
    base = _forward.matmul(x, param if transposed else param.T)
    if iterinfo is None:
        return base
    members = as_members(iterinfo, param.device)
    values, rows, cols = sparse_fn(frozen_noiser_params, noiser_params["sigma"], iterinfo, param, base_key)
    if members.population:
        _forward.check_member_axis(x, members.shape[0])
        rows_x = x.reshape(x.shape[0], -1, x.shape[-1])
        rows_out = base.reshape(base.shape[0], -1, base.shape[-1])
        expand = (rows_x.shape[0], rows_x.shape[1], values.shape[-1])
        rows, cols, values = (t[:, None, :].expand(expand) for t in (rows, cols, values))
    else:
        rows_x = x.reshape(-1, x.shape[-1])
        rows_out = base.reshape(-1, base.shape[-1])
        expand = (rows_x.shape[0], values.shape[-1])
        rows, cols, values = (t.expand(expand) for t in (rows, cols, values))
    gathered = torch.gather(rows_x, -1, cols.clamp(max=rows_x.shape[-1] - 1).to(torch.int64))
    products = gathered * values
    return _scatter_add(rows_out, rows, products).reshape(base.shape)


class Sparse(ESNoiser):
    """Antithetic evolution strategies with ``max(a, b)``-sparse matrix perturbations."""

    @classmethod
    def init_noiser(cls, params, sigma, lr, *args, solver=None, solver_kwargs=None, group_size=0,
                    freeze_nonlora=False, noise_reuse=0, rank=1, q_multiplier=1, **kwargs):
        """Returns ``(frozen_noiser_params, noiser_params)``; frozen has ``group_size``,
        ``freeze_nonlora``, ``noise_reuse``, ``solver`` and ``q_multiplier`` (stored, unused, as
        upstream); ``rank`` is accepted and not stored."""
        _update.check_init(sigma, group_size, noise_reuse, rank)
        true_solver = _update.build_solver(lr, solver, solver_kwargs)
        frozen = {"group_size": group_size, "freeze_nonlora": freeze_nonlora, "noise_reuse": noise_reuse,
                  "solver": true_solver, "q_multiplier": q_multiplier}
        return frozen, {"sigma": sigma, "opt_state": true_solver.init(params)}

    @classmethod
    def sparse_noise(cls, frozen_noiser_params, base_sigma, iterinfo, param, key):
        """The sparse perturbation ``(values, rows, cols)``, each ``(*S, *M, k)``, of ``param (*S, a, b)``
        (see :func:`get_sparse_update_params`)."""
        return get_sparse_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key)

    @classmethod
    def matrix_gradient(cls, base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
        """``mean_n(f_n * E_n) * k / (a * b)`` with ``E_n`` member ``n``'s :meth:`sparse_noise` matrix."""
        values, rows, cols = cls.sparse_noise(frozen_noiser_params, base_sigma, iterinfo, param, key)
        a, b = inner_shape(param, key)
        k = values.shape[-1]
        weighted = broadcast_members(scores, 1) * values
        flat_index = rows.to(torch.int64) * b + cols
        flat_index = torch.where(rows < a, flat_index, a * b)
        zeros = torch.zeros(weighted.shape[:-1] + (a * b,), dtype=param.dtype, device=param.device)
        matrices = _scatter_add(zeros, flat_index, weighted).reshape(weighted.shape[:-1] + (a, b))
        averaged = mean(matrices, _estimators.member_axis(key))
        return averaged * weak_scalar(k / (a * b), averaged)

    @classmethod
    def do_mm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ param.T`` plus the member's sparse perturbation; ``param (out, in)``."""
        return _sparse_mm(cls.sparse_noise, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x,
                          transposed=False)

    @classmethod
    def do_Tmm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ param`` plus the sparse perturbation with upstream's index use (see ``_sparse_mm``)."""
        return _sparse_mm(cls.sparse_noise, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x,
                          transposed=True)


# Upstream's module-level names for this class's per-leaf estimators (by es class), kept so that
# code written against upstream finds them.
_simple_full_update, _simple_sparse_update, _noop_update, _noop_update = _estimators.update_fns(Sparse)
