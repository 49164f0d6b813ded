"""OpenES: full-rank Gaussian noise for every parameter, matrices included."""
from __future__ import annotations

from . import _estimators, _forward, _update
from ._es_noiser import ESNoiser
from ._gaussian import get_nonlora_update_params

__all__ = ["OpenES", "get_nonlora_update_params"]


def _simple_lora_update(base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """``mean_n(f_n * noise_n)`` for an ``MM_PARAM`` leaf (full noise; ``freeze_nonlora`` does not apply)."""
    return _estimators.full_noise_gradient(get_nonlora_update_params, base_sigma, param, key, scores, iterinfo,
                                           frozen_noiser_params)


def _simple_full_update(base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """``mean_n(f_n * noise_n)`` for a ``PARAM`` leaf (zeros with ``freeze_nonlora``)."""
    return _estimators.nonlora_gradient(get_nonlora_update_params, base_sigma, param, key, scores, iterinfo,
                                        frozen_noiser_params)


_noop_update = _estimators.zero_gradient


class OpenES(ESNoiser):
    """Antithetic full-rank evolution strategies (the baseline EGGROLL is compared against)."""

    update_fns = (_simple_full_update, _simple_lora_update, _noop_update, _noop_update)
    noise_fn = staticmethod(get_nonlora_update_params)

    @classmethod
    def init_noiser(cls, params, sigma, lr, *args, solver=None, solver_kwargs=None, group_size=0,
                    freeze_nonlora=False, noise_reuse=0, **kwargs):
        """Returns ``(frozen_noiser_params, noiser_params)``; frozen has ``group_size``,
        ``freeze_nonlora``, ``noise_reuse`` and ``solver`` (no rank)."""
        _update.check_init(sigma, group_size, noise_reuse)
        solver_ = _update.build_solver(lr, solver, solver_kwargs)
        frozen = {"group_size": group_size, "freeze_nonlora": freeze_nonlora, "noise_reuse": noise_reuse,
                  "solver": solver_}
        return frozen, {"sigma": sigma, "opt_state": solver_.init(params)}

    @classmethod
    def do_mm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ (param + noise).T``: ``param (out, in)``; per member for a population."""
        return _forward.full_mm(get_nonlora_update_params, frozen_noiser_params, noiser_params, param, base_key,
                                iterinfo, x, transposed=False)

    @classmethod
    def do_Tmm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ (param + noise)``: ``param (in, out)``."""
        return _forward.full_mm(get_nonlora_update_params, frozen_noiser_params, noiser_params, param, base_key,
                                iterinfo, x, transposed=True)
