"""EGGROLL: every weight matrix of a member is perturbed by a rank-``r`` product ``A @ B.T``.

Matrices (``MM_PARAM``) get ``(sigma / sqrt(rank)) * A @ B.T`` with ``A`` ``(a, r)`` and ``B``
``(b, r)`` standard normal; other parameters (``PARAM``) get full ``sigma * normal`` noise;
embeddings and excluded parameters get none and are not updated.
"""

from . import _estimators, _forward, _update
from ._es_noiser import ESNoiser
from ._gaussian import get_lora_update_params, get_nonlora_update_params
from ._validate import check_count


def _simple_full_update(base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """Fitness-weighted mean of full noise for a ``PARAM`` leaf (zeros if ``freeze_nonlora``)."""
    return _estimators.nonlora_gradient(
        get_nonlora_update_params, base_sigma, param, key, scores, iterinfo, frozen_noiser_params
    )


def _simple_lora_update(base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """``sum_n f_n A_n @ B_n.T / N`` for an ``MM_PARAM`` leaf ``(a, b)``."""
    return _estimators.low_rank_gradient(
        get_lora_update_params, base_sigma, param, key, scores, iterinfo, frozen_noiser_params
    )


_noop_update = _estimators.zero_gradient

# Indexed by the es_map class: PARAM, MM_PARAM, EMB_PARAM, EXCLUDED.
_UPDATE_FNS = (_simple_full_update, _simple_lora_update, _noop_update, _noop_update)


class EggRoll(ESNoiser):
    """Low-rank antithetic evolution strategies (the paper's method)."""

    update_fns = _UPDATE_FNS
    noise_fn = staticmethod(get_nonlora_update_params)

    @classmethod
    def init_noiser(cls, params, sigma, lr, *args, solver=None, solver_kwargs=None, group_size=0,
                    freeze_nonlora=False, noise_reuse=0, rank=1, use_batched_update: bool = False,
                    **kwargs):
        """Returns ``(frozen_noiser_params, noiser_params)``.

        frozen: ``group_size`` (0 = one global fitness normalisation), ``freeze_nonlora`` (no
        noise and no update for non-matrix params), ``noise_reuse`` (0 = same noise every epoch),
        ``solver`` (the built optax transformation), ``rank``, ``use_batched_update``.
        noiser_params: ``{"sigma": sigma, "opt_state": solver state for params}``.
        Unknown keyword arguments are ignored.
        """
        check_count("group_size", group_size, 0)
        check_count("noise_reuse", noise_reuse, 0)
        check_count("rank", rank, 1)
        true_solver = _update.build_solver(lr, solver, solver_kwargs)
        frozen = {"group_size": group_size, "freeze_nonlora": freeze_nonlora, "noise_reuse": noise_reuse,
                  "solver": true_solver, "rank": rank, "use_batched_update": use_batched_update}
        return frozen, {"sigma": sigma, "opt_state": true_solver.init(params)}

    @classmethod
    def do_mm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ param.T`` plus this member's low-rank perturbation; ``param`` is ``(out, in)``."""
        return _forward.low_rank_mm(get_lora_update_params, frozen_noiser_params, noiser_params,
                                    param, base_key, iterinfo, x)

    @classmethod
    def do_Tmm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ param`` plus this member's low-rank perturbation; ``param`` is ``(in, out)``."""
        return _forward.low_rank_Tmm(get_lora_update_params, frozen_noiser_params, noiser_params,
                                     param, base_key, iterinfo, x)
