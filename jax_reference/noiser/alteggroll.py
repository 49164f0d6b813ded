"""Alternative EGGROLL: the same low-rank noise, but a sign-based matrix update.

Forward passes, fitness shaping and non-matrix updates are EGGROLL's. For a matrix the update
uses only the signs of each member's factors:
``sum_n (sigma * f_n / sqrt(rank)) * sign(A_n) @ sign(B_n).T / N``, where ``A_n`` carries the
member's antithetic sign, so ``sign(A_n)`` flips between the two members of a pair.
"""
import jax.numpy as jnp

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
    """Sign estimate for an ``MM_PARAM`` leaf ``(a, b)``; scales with ``base_sigma`` (= sigma)."""
    A, B = _estimators.draw_population(
        get_lora_update_params, frozen_noiser_params,
        base_sigma / jnp.sqrt(frozen_noiser_params["rank"]), iterinfo, param, key,
    )
    weights = jnp.reshape(scores, scores.shape + (1, 1))
    A = base_sigma * weights * jnp.sign(A) / jnp.sqrt(frozen_noiser_params["rank"])
    return jnp.einsum("nir,njr->ij", A, jnp.sign(B)) / scores.shape[0]


_noop_update = _estimators.zero_gradient

# Indexed by the es_map class: PARAM, MM_PARAM, EMB_PARAM, EXCLUDED.
_UPDATE_FNS = (_simple_full_update, _simple_lora_update, _noop_update, _noop_update)


class EggRoll(ESNoiser):
    """EGGROLL noise with the sign-of-factors matrix update."""

    update_fns = _UPDATE_FNS
    noise_fn = staticmethod(get_nonlora_update_params)

    @classmethod
    def init_noiser(cls, params, sigma, lr, *args, solver=None, solver_kwargs=None, group_size=0,
                    freeze_nonlora=False, noise_reuse=0, rank=1, **kwargs):
        """Returns ``(frozen_noiser_params, noiser_params)``.

        frozen: ``group_size``, ``freeze_nonlora``, ``noise_reuse``, ``solver``, ``rank``;
        noiser_params: ``{"sigma": sigma, "opt_state": ...}``. Unknown keywords are ignored
        (including ``use_batched_update``: this noiser always updates leaf by leaf).
        """
        check_count("group_size", group_size, 0)
        check_count("noise_reuse", noise_reuse, 0)
        check_count("rank", rank, 1)
        true_solver = _update.build_solver(lr, solver, solver_kwargs)
        frozen = {"group_size": group_size, "freeze_nonlora": freeze_nonlora, "noise_reuse": noise_reuse,
                  "solver": true_solver, "rank": rank}
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
