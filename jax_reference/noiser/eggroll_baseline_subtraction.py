"""EGGROLL with baseline subtraction ("eggrollbs").

The population is ``Q`` groups of ``G = group_size`` members. Within every group, members 0 and
1 get NO noise (a 0/1 mask on the factors and on full noise) and serve as the baseline; the
other members are perturbed exactly as in EGGROLL. Fitness shaping compares each group with
its own first member and averages over groups, so :meth:`EggRollBS.convert_fitnesses` returns
``G`` values, not ``N``. The solver is ``chain(clip_by_global_norm(trust_region_norm), solver)``.
"""
import jax
import jax.numpy as jnp
import optax

from . import _estimators, _forward, _update
from ._member import antithetic_sigma, member_key
from ._validate import check_count
from .base_noiser import Noiser

STD_EPS = 1e-8


def _perturbed_mask(frozen_noiser_params, thread_id, dtype):
    """1 for members perturbed in their group (``thread_id % G >= 2``), 0 for the two baseline members."""
    group_size = jnp.asarray(frozen_noiser_params["group_size"])
    return (jnp.mod(thread_id, group_size) >= 2).astype(dtype)


def get_nonlora_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key):
    """EGGROLL's full noise ``(param.shape)`` times the member's 0/1 baseline mask."""
    draw = jax.random.normal(member_key(frozen_noiser_params, iterinfo, key), param.shape, dtype=param.dtype)
    thread_id = iterinfo[1]
    return draw * antithetic_sigma(base_sigma, thread_id) * _perturbed_mask(
        frozen_noiser_params, thread_id, param.dtype
    )


def get_lora_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key):
    """EGGROLL's factors ``A`` ``(a, r)`` and ``B`` ``(b, r)``, both multiplied by the baseline mask."""
    a, b = param.shape
    thread_id = iterinfo[1]
    mask = _perturbed_mask(frozen_noiser_params, thread_id, param.dtype)
    draw = jax.random.normal(
        member_key(frozen_noiser_params, iterinfo, key),
        (a + b, frozen_noiser_params["rank"]),
        dtype=param.dtype,
    )
    return draw[b:] * mask * antithetic_sigma(base_sigma, thread_id), draw[:b] * mask


def _simple_full_update(base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """Fitness-weighted mean of masked full noise for a ``PARAM`` leaf (zeros if ``freeze_nonlora``)."""
    return _estimators.nonlora_gradient(
        get_nonlora_update_params, base_sigma, param, key, scores, iterinfo, frozen_noiser_params
    )


def _simple_lora_update(base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """``sum_n f_n A_n @ B_n.T / N`` with masked factors, for an ``MM_PARAM`` leaf ``(a, b)``."""
    return _estimators.low_rank_gradient(
        get_lora_update_params, base_sigma, param, key, scores, iterinfo, frozen_noiser_params
    )


_noop_update = _estimators.zero_gradient

# Indexed by the es_map class: PARAM, MM_PARAM, EMB_PARAM, EXCLUDED.
_UPDATE_FNS = (_simple_full_update, _simple_lora_update, _noop_update, _noop_update)


class EggRollBS(Noiser):
    """EGGROLL whose groups carry two unperturbed baseline members."""

    @classmethod
    def init_noiser(cls, params, sigma, lr, *args, solver=None, solver_kwargs=None, group_size=0,
                    freeze_nonlora=False, noise_reuse=0, rank=1, trust_region_norm=1.0, **kwargs):
        """Returns ``(frozen_noiser_params, noiser_params)``.

        frozen: ``group_size``, ``freeze_nonlora``, ``noise_reuse``, ``solver`` (gradient clipped to
        global norm ``trust_region_norm`` before ``solver``), ``rank``, ``trust_region_norm``.
        ``convert_fitnesses`` needs ``group_size >= 1``.
        """
        check_count("group_size", group_size, 0)
        check_count("noise_reuse", noise_reuse, 0)
        check_count("rank", rank, 1)
        true_solver = optax.chain(
            optax.clip_by_global_norm(trust_region_norm),
            _update.build_solver(lr, solver, solver_kwargs),
        )
        frozen = {"group_size": group_size, "freeze_nonlora": freeze_nonlora, "noise_reuse": noise_reuse,
                  "solver": true_solver, "rank": rank, "trust_region_norm": trust_region_norm}
        return frozen, {"sigma": sigma, "opt_state": true_solver.init(params)}

    @classmethod
    def do_mm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ param.T`` plus the member's masked low-rank perturbation; ``param`` is ``(out, in)``."""
        return _forward.low_rank_mm(get_lora_update_params, frozen_noiser_params, noiser_params,
                                    param, base_key, iterinfo, x)

    @classmethod
    def do_Tmm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ param`` plus the member's masked low-rank perturbation; ``param`` is ``(in, out)``."""
        return _forward.low_rank_Tmm(get_lora_update_params, frozen_noiser_params, noiser_params,
                                     param, base_key, iterinfo, x)

    @classmethod
    def do_emb(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """Not supported by this noiser: raises ``NotImplementedError``."""
        raise NotImplementedError("EggRollBS has no embedding lookup; mark embeddings EXCLUDED")

    @classmethod
    def get_noisy_standard(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo):
        """``param`` plus the member's masked full noise; ``param`` if unperturbed or frozen."""
        return _forward.noisy_standard(get_nonlora_update_params, frozen_noiser_params, noiser_params,
                                       param, base_key, iterinfo)

    @classmethod
    def convert_fitnesses(cls, frozen_noiser_params, noiser_params, raw_scores, num_episodes_list=None):
        """Per-direction fitnesses, shape ``(G,)``, from ``(Q * G,)`` or ``(Q, G)`` raw scores.

        Row ``q`` becomes ``(S[q] - S[q, 0]) / (std(S[q]) + 1e-8)`` (population std), columns 0
        and 1 are set to 0, and the result is the mean over the ``Q`` rows.
        """
        group_size = int(frozen_noiser_params["group_size"])
        if group_size < 1:
            raise ValueError("EggRollBS.convert_fitnesses needs group_size >= 1; pass group_size to init_noiser")
        if raw_scores.ndim == 1:
            if raw_scores.size % group_size != 0:
                raise ValueError(
                    f"raw_scores has {raw_scores.size} entries, not a multiple of group_size={group_size}"
                )
            scores = raw_scores.reshape(raw_scores.size // group_size, group_size)
        else:
            scores = raw_scores
            if scores.shape[1] != group_size:
                raise ValueError(
                    f"raw_scores of shape {scores.shape} must have group_size={group_size} columns"
                )
        shaped = (scores - scores[:, :1]) / (jnp.std(scores, axis=1, keepdims=True) + STD_EPS)
        shaped = shaped.at[:, 0].set(0.0).at[:, 1].set(0.0)
        return jnp.mean(shaped, axis=0)

    @classmethod
    def _do_update(cls, param, base_key, fitnesses, iterinfos, map_classification, sigma,
                   frozen_noiser_params, **kwargs):
        """Descent direction ``-(estimate * sqrt(fitnesses.size))`` for one leaf."""
        return _update.leaf_gradient(_UPDATE_FNS[map_classification], param, base_key, fitnesses,
                                     iterinfos, sigma, frozen_noiser_params)

    @classmethod
    def do_updates(cls, frozen_noiser_params, noiser_params, params, base_keys, fitnesses, iterinfos, es_map):
        """One clipped optimizer step; ``fitnesses`` must have one entry per member in ``iterinfos``.

        Returns ``(noiser_params, new_params)`` (``noiser_params`` updated in place).
        """
        grads = _update.gradient_tree(
            lambda p, k, m: cls._do_update(p, k, fitnesses, iterinfos, m, noiser_params["sigma"],
                                           frozen_noiser_params),
            params, base_keys, es_map,
        )
        return _update.apply_solver(frozen_noiser_params, noiser_params, params, grads)
