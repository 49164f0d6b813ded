"""OpenES: full-rank Gaussian perturbations for every parameter, matrices included.

A member sees ``param + sigma * (+-normal(param.shape))`` for matrices (``MM_PARAM``) and
other parameters (``PARAM``) alike; embeddings and excluded parameters are never updated.
``freeze_nonlora`` freezes only the non-matrix parameters.
"""
from __future__ import annotations

from . import _estimators, _forward, _update
from ._es_noiser import ESNoiser
from ._gaussian import get_nonlora_update_params

__all__ = ["OpenES", "get_nonlora_update_params"]


class OpenES(ESNoiser):
    """Antithetic full-rank evolution strategies (the baseline EGGROLL is compared against)."""

    @classmethod
    def init_noiser(cls, params, sigma, lr, *args, solver=None, solver_kwargs=None, group_size=0,
                    freeze_nonlora=False, noise_reuse=0, **kwargs):
        """Returns ``(frozen_noiser_params, noiser_params)``; frozen has ``group_size``,
        ``freeze_nonlora``, ``noise_reuse`` and ``solver`` (no rank: ``rank`` is ignored)."""
        _update.check_init(sigma, group_size, noise_reuse)
        true_solver = _update.build_solver(lr, solver, solver_kwargs)
        frozen = {"group_size": group_size, "freeze_nonlora": freeze_nonlora, "noise_reuse": noise_reuse,
                  "solver": true_solver}
        return frozen, {"sigma": sigma, "opt_state": true_solver.init(params)}

    @classmethod
    def matrix_gradient(cls, base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
        """``mean_n(f_n * noise_n)`` of :meth:`full_noise` (``freeze_nonlora`` does not apply)."""
        return _estimators.full_rank_gradient(cls.full_noise, base_sigma, param, key, scores, iterinfo,
                                              frozen_noiser_params)

    @classmethod
    def do_mm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ (param + noise).T``: ``param (out, in)``."""
        return _forward.full_mm(cls.full_noise, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x,
                                transposed=False)

    @classmethod
    def do_Tmm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ (param + noise)``: ``param (in, out)``."""
        return _forward.full_mm(cls.full_noise, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x,
                                transposed=True)


# Upstream's module-level names for this class's per-leaf estimators (by es class), kept so that
# code written against upstream finds them.
_simple_full_update, _simple_lora_update, _noop_update, _noop_update = _estimators.update_fns(OpenES)
