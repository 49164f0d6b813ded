"""Sparse: each member perturbs ``k = max(a, b)`` random entries of every weight matrix.

Per member and matrix ``(a, b)``, the member key is split in two: the first draws ``k`` flat
indices ``floor(uniform(k) * a * b)`` (row ``// b``, column ``% b``; with replacement; float32
uniforms, so for ``a * b`` beyond 2**24 not every entry is reachable), the second ``k`` normal
values times ``+-sigma``. Non-matrix parameters get EGGROLL's full noise. The matrix update
scatter-adds the fitness-weighted values, averages over members and scales by ``k / (a * b)``.

The forward primitives index the FIRST axis of ``x``: they are right for one member's
unbatched input ``x`` of shape ``(in,)``, the way models call them under ``vmap``; a batched
``(batch, in)`` input is indexed along its batch axis, as upstream does.
"""
import jax
import jax.numpy as jnp

from . import _estimators, _update
from ._es_noiser import ESNoiser
from ._gaussian import get_lora_update_params, get_nonlora_update_params
from ._member import member_coordinates, member_key

__all__ = ["Sparse", "get_lora_update_params", "get_nonlora_update_params", "get_sparse_update_params"]


def get_sparse_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key):
    """One member's sparse perturbation of ``param`` ``(a, b)``: ``(values, rows, cols)``, each ``(k,)``.

    ``values`` has ``param.dtype`` (times the signed ``base_sigma``); ``rows = flat // b`` and
    ``cols = flat % b`` are int32. Repeated indices add up.
    """
    true_epoch, pair, sigma = member_coordinates(frozen_noiser_params, base_sigma, iterinfo)
    a, b = param.shape
    k = max(a, b)
    index_key, value_key = jax.random.split(member_key(key, true_epoch, pair), 2)
    flat = jnp.floor(jax.random.uniform(index_key, (k,)) * (a * b)).astype(jnp.int32)
    rows = flat // b
    cols = flat % b
    values = jax.random.normal(value_key, shape=(k,), dtype=param.dtype)
    return values * sigma, rows, cols


def _scatter_add(target, index, updates):
    """``target.at[index].add(updates)`` accumulated at the promoted dtype, returned in ``target``'s.

    The same arithmetic as letting ``.at[].add`` promote implicitly (which upstream does, and
    which JAX deprecates when ``updates`` is wider than ``target``).
    """
    wide = jnp.result_type(target, updates)
    return target.astype(wide).at[index].add(updates).astype(target.dtype)


def _sparse_mm(sparse_fn, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x, *, transposed):
    """``x @ param.T`` (``do_mm``) or ``x @ param`` (``do_Tmm``) plus the scatter
    ``out[rows] += x[cols] * values`` of the sparse perturbation drawn by ``sparse_fn``.

    ``do_Tmm`` reads ``param (in, out)``'s axes as ``(rows, cols)`` too, so for a non-square
    ``param`` it is not the transpose of ``do_mm``'s perturbation (row indices address the output
    and may exceed it: out-of-range adds are dropped, out-of-range reads of ``x`` are clamped),
    matching upstream.
    """
    base_ans = x @ (param if transposed else param.T)
    if iterinfo is None:
        return base_ans
    values, rows, cols = sparse_fn(frozen_noiser_params, noiser_params["sigma"], iterinfo, param, base_key)
    return _scatter_add(base_ans, rows, x[cols] * values)


class Sparse(ESNoiser):
    """Antithetic evolution strategies with ``max(a, b)``-sparse matrix perturbations."""

    @classmethod
    def init_noiser(cls, params, sigma, lr, *args, solver=None, solver_kwargs=None, group_size=0,
                    freeze_nonlora=False, noise_reuse=0, rank=1, q_multiplier=1, **kwargs):
        """Returns ``(frozen_noiser_params, noiser_params)``; frozen has ``group_size``,
        ``freeze_nonlora``, ``noise_reuse``, ``solver`` and ``q_multiplier`` (stored, unused, as
        upstream); ``rank`` is accepted and not stored."""
        _update.check_init(group_size, noise_reuse)
        true_solver = _update.build_solver(lr, solver, solver_kwargs)
        frozen = {"group_size": group_size, "freeze_nonlora": freeze_nonlora, "noise_reuse": noise_reuse,
                  "solver": true_solver, "q_multiplier": q_multiplier}
        return frozen, {"sigma": sigma, "opt_state": true_solver.init(params)}

    @classmethod
    def sparse_noise(cls, frozen_noiser_params, base_sigma, iterinfo, param, key):
        """One member's sparse perturbation ``(values, rows, cols)``, each ``(k,)``, of ``param (a, b)``
        (see :func:`get_sparse_update_params`)."""
        return get_sparse_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key)

    @classmethod
    def matrix_gradient(cls, base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
        """``mean_n(f_n * E_n) * k / (a * b)`` with ``E_n`` member ``n``'s :meth:`sparse_noise` matrix.

        The weighted values ``(N, k)`` are scatter-added (repeated indices accumulate) into an
        ``(N, a, b)`` zero array at their promoted dtype (float32 for half-precision params, as
        JAX's implicit scatter promotion does upstream), rounded once to ``param.dtype``, then
        averaged over members.
        """
        values, rows, cols = _estimators.draw_population(
            cls.sparse_noise, frozen_noiser_params, base_sigma, iterinfo, param, key
        )
        a, b = param.shape
        N, k = values.shape
        weighted = jnp.reshape(scores, (N, 1)) * values
        dense = _scatter_add(jnp.zeros((N, a, b), dtype=param.dtype), (jnp.arange(N)[:, None], rows, cols),
                             weighted)
        return jnp.mean(dense, axis=0) * (k / (a * b))

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
