"""OpenES: full-rank Gaussian perturbations for every parameter, matrices included.

A member sees ``param + sigma * (+-normal(param.shape))`` for matrices (``MM_PARAM``) and
other parameters (``PARAM``) alike; embeddings and excluded parameters are never updated.
``freeze_nonlora`` freezes only the non-matrix parameters.
"""
from . import _estimators, _forward, _update
from ._fitness import standardize_fitnesses
from ._gaussian import get_nonlora_update_params
from ._validate import check_count
from .base_noiser import Noiser


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


class OpenES(Noiser):
    """Antithetic full-rank evolution strategies (Salimans et al. style)."""

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

    @classmethod
    def do_emb(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """Not supported by this noiser: raises ``NotImplementedError``."""
        raise NotImplementedError("OpenES has no embedding lookup; mark embeddings EXCLUDED or use another noiser")

    @classmethod
    def get_noisy_standard(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo):
        """``param + sigma * (+-normal)`` for this member; ``param`` if unperturbed or frozen."""
        return _forward.noisy_standard(get_nonlora_update_params, frozen_noiser_params, noiser_params,
                                       param, base_key, iterinfo)

    @classmethod
    def convert_fitnesses(cls, frozen_noiser_params, noiser_params, raw_scores, num_episodes_list=None):
        """Standardised fitnesses ``(N,)``; see ``_fitness.standardize_fitnesses``."""
        return standardize_fitnesses(raw_scores, frozen_noiser_params["group_size"])

    @classmethod
    def _do_update(cls, param, base_key, fitnesses, iterinfos, map_classification, sigma,
                   frozen_noiser_params, **kwargs):
        """Descent direction ``-(estimate * sqrt(N))`` for one leaf of es_map class ``map_classification``."""
        return _update.leaf_gradient(_UPDATE_FNS[map_classification], param, base_key, fitnesses,
                                     iterinfos, sigma, frozen_noiser_params)

    @classmethod
    def do_updates(cls, frozen_noiser_params, noiser_params, params, base_keys, fitnesses, iterinfos, es_map):
        """One optimizer step; returns ``(noiser_params, new_params)`` (``noiser_params`` updated in place)."""
        grads = _update.gradient_tree(
            lambda p, k, m: cls._do_update(p, k, fitnesses, iterinfos, m, noiser_params["sigma"],
                                           frozen_noiser_params),
            params, base_keys, es_map,
        )
        return _update.apply_solver(frozen_noiser_params, noiser_params, params, grads)
