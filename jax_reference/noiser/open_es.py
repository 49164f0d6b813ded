"""OpenES: full-rank Gaussian perturbations for every parameter, matrices included.

A member sees ``param + sigma * (+-normal(param.shape))`` for matrices (``MM_PARAM``) and
other parameters (``PARAM``) alike; embeddings and excluded parameters are never updated.
``freeze_nonlora`` freezes only the non-matrix parameters.
"""
from . import _estimators, _update
from ._es_noiser import ESNoiser
from ._gaussian import get_nonlora_update_params
from ._validate import check_count


def _simple_full_update(base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """Fitness-weighted mean of full noise for a ``PARAM`` leaf (zeros if ``freeze_nonlora``)."""
    return _estimators.nonlora_gradient(
        get_nonlora_update_params, base_sigma, param, key, scores, iterinfo, frozen_noiser_params
    )


def _simple_lora_update(base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """Fitness-weighted mean of full noise for an ``MM_PARAM`` leaf (``freeze_nonlora`` ignored)."""
    return _estimators.full_rank_gradient(
        get_nonlora_update_params, base_sigma, param, key, scores, iterinfo, frozen_noiser_params
    )


_noop_update = _estimators.zero_gradient

# Indexed by the es_map class: PARAM, MM_PARAM, EMB_PARAM, EXCLUDED.
_UPDATE_FNS = (_simple_full_update, _simple_lora_update, _noop_update, _noop_update)


class OpenES(ESNoiser):
    """Antithetic full-rank evolution strategies (Salimans et al. style)."""

    update_fns = _UPDATE_FNS
    noise_fn = staticmethod(get_nonlora_update_params)

    @classmethod
    def init_noiser(cls, params, sigma, lr, *args, solver=None, solver_kwargs=None, group_size=0,
                    freeze_nonlora=False, noise_reuse=0, **kwargs):
        """Returns ``(frozen_noiser_params, noiser_params)``.

        frozen: ``group_size``, ``freeze_nonlora``, ``noise_reuse``, ``solver``;
        noiser_params: ``{"sigma": sigma, "opt_state": ...}``. Unknown keywords (``rank``) are ignored.
        """
        check_count("group_size", group_size, 0)
        check_count("noise_reuse", noise_reuse, 0)
        true_solver = _update.build_solver(lr, solver, solver_kwargs)
        frozen = {"group_size": group_size, "freeze_nonlora": freeze_nonlora, "noise_reuse": noise_reuse,
                  "solver": true_solver}
        return frozen, {"sigma": sigma, "opt_state": true_solver.init(params)}

    @classmethod
    def do_mm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ (param + noise).T`` for ``param`` ``(out, in)``; the noisy matrix is formed explicitly."""
        if iterinfo is None:
            return x @ param.T
        noisy = param + get_nonlora_update_params(frozen_noiser_params, noiser_params["sigma"], iterinfo,
                                                  param, base_key)
        return x @ noisy.T

    @classmethod
    def do_Tmm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ (param + noise)`` for ``param`` ``(in, out)``."""
        if iterinfo is None:
            return x @ param
        noisy = param + get_nonlora_update_params(frozen_noiser_params, noiser_params["sigma"], iterinfo,
                                                  param, base_key)
        return x @ noisy
