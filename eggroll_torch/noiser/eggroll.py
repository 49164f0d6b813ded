"""EGGROLL: each member perturbs every weight matrix by a rank-``r`` product ``A @ B.T``.

``MM_PARAM`` matrices get ``(+-sigma / sqrt(rank)) * A @ B.T`` with ``A (a, r)``, ``B (b, r)``
standard normal; ``PARAM`` leaves get full ``+-sigma * normal`` noise (none with
``freeze_nonlora``); ``EMB_PARAM`` and ``EXCLUDED`` leaves get no noise and a zero update.
"""
from __future__ import annotations

from . import _estimators, _update
from ._es_noiser import ESNoiser
from ._gaussian import get_lora_update_params, get_nonlora_update_params

__all__ = ["EggRoll", "get_lora_update_params", "get_nonlora_update_params"]


class EggRoll(ESNoiser):
    """Low-rank antithetic evolution strategies (the paper's method)."""

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
        true_solver = _update.build_solver(lr, solver, solver_kwargs)
        frozen = {"group_size": group_size, "freeze_nonlora": freeze_nonlora, "noise_reuse": noise_reuse,
                  "solver": true_solver, "rank": rank, "use_batched_update": use_batched_update}
        return frozen, {"sigma": sigma, "opt_state": true_solver.init(params)}


# Upstream's module-level names for this class's per-leaf estimators (by es class), kept so that
# code written against upstream finds them.
_simple_full_update, _simple_lora_update, _noop_update, _noop_update = _estimators.update_fns(EggRoll)
