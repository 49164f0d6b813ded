"""EGGROLL: each member perturbs every weight matrix by a rank-``r`` product ``A @ B.T``.

``MM_PARAM`` matrices get ``(+-sigma / sqrt(rank)) * A @ B.T`` with ``A (a, r)``, ``B (b, r)``
standard normal; ``PARAM`` leaves get full ``+-sigma * normal`` noise (none with
``freeze_nonlora``); ``EMB_PARAM`` and ``EXCLUDED`` leaves get no noise and a zero update.
"""
from __future__ import annotations

from . import _estimators, _forward, _update
from ._es_noiser import ESNoiser
from ._gaussian import get_lora_update_params, get_nonlora_update_params

__all__ = ["EggRoll", "get_lora_update_params", "get_nonlora_update_params"]


def _simple_full_update(base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """``mean_n(f_n * noise_n)`` for a ``PARAM`` leaf (zeros with ``freeze_nonlora``)."""
    return _estimators.nonlora_gradient(get_nonlora_update_params, base_sigma, param, key, scores, iterinfo,
                                        frozen_noiser_params)


def _simple_lora_update(base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """``sum_n f_n A_n @ B_n.T / N`` for an ``MM_PARAM`` leaf."""
    return _estimators.low_rank_gradient(get_lora_update_params, base_sigma, param, key, scores, iterinfo,
                                         frozen_noiser_params)


_noop_update = _estimators.zero_gradient

# Indexed by es class: PARAM, MM_PARAM, EMB_PARAM, EXCLUDED.
UPDATE_FNS = (_simple_full_update, _simple_lora_update, _noop_update, _noop_update)


class EggRoll(ESNoiser):
    """Low-rank antithetic evolution strategies (the paper's method)."""

    update_fns = UPDATE_FNS
    noise_fn = staticmethod(get_nonlora_update_params)

    @classmethod
    def init_noiser(cls, params, sigma, lr, *args, solver=None, solver_kwargs=None, group_size=0,
                    freeze_nonlora=False, noise_reuse=0, rank=1, use_batched_update: bool = False, **kwargs):
        """Returns ``(frozen_noiser_params, noiser_params)``.

        frozen: ``group_size`` (0: one global fitness normalisation), ``freeze_nonlora``,
        ``noise_reuse`` (0: the same noise every epoch; n: fresh noise every n epochs),
        ``solver`` (the built optimizer), ``rank``, ``use_batched_update``.
        noiser_params: ``{"sigma": sigma, "opt_state": solver.init(params)}``. Extra keywords are
        ignored, as upstream ignores them.
        """
        _update.check_init(sigma, group_size, noise_reuse, rank)
        solver_ = _update.build_solver(lr, solver, solver_kwargs)
        frozen = {"group_size": group_size, "freeze_nonlora": freeze_nonlora, "noise_reuse": noise_reuse,
                  "solver": solver_, "rank": rank, "use_batched_update": use_batched_update}
        return frozen, {"sigma": sigma, "opt_state": solver_.init(params)}

    @classmethod
    def do_mm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ param.T + x @ B @ A.T``: ``param (out, in)``, ``x (..., in)`` or ``(N, ..., in)``."""
        return _forward.low_rank_mm(get_lora_update_params, frozen_noiser_params, noiser_params, param,
                                    base_key, iterinfo, x, transposed=False)

    @classmethod
    def do_Tmm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ param + x @ A @ B.T``: ``param (in, out)``."""
        return _forward.low_rank_mm(get_lora_update_params, frozen_noiser_params, noiser_params, param,
                                    base_key, iterinfo, x, transposed=True)
