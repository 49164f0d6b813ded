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
from ._es_noiser import ESNoiser
from ._member import member_key
from ._validate import check_count

STD_EPS = 1e-8


def _member_coordinates(frozen_noiser_params, base_sigma, iterinfo, dtype):
    """``(mask, noise epoch, pair index, signed sigma)`` of one member.

    ``mask`` (in ``dtype``) is 1 for perturbed members (``thread_id % G >= 2``) and 0 for the
    two baseline members of each group. Same values as ``_member.member_coordinates``, but
    computed as upstream's baseline noiser does: the noise epoch through ``where`` and the sign
    as a multiplication by ``+-1.0``.
    """
    epoch, thread_id = iterinfo
    mask = (jnp.mod(thread_id, jnp.asarray(frozen_noiser_params["group_size"])) >= 2).astype(dtype)
    noise_reuse = frozen_noiser_params["noise_reuse"]
    # floor_divide, not //, so a Python-int epoch with noise_reuse=0 does not raise.
    true_epoch = jnp.where(noise_reuse == 0, 0, jnp.floor_divide(epoch, noise_reuse))
    pair = thread_id // 2
    sigma = base_sigma * jnp.where((thread_id % 2) == 0, 1.0, -1.0)
    return mask, true_epoch, pair, sigma


def get_nonlora_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key):
    """EGGROLL's full noise ``(param.shape)`` times the member's 0/1 baseline mask."""
    mask, true_epoch, pair, sigma = _member_coordinates(frozen_noiser_params, base_sigma, iterinfo, param.dtype)
    draw = jax.random.normal(member_key(key, true_epoch, pair), param.shape, dtype=param.dtype)
    return draw * sigma * mask


def get_lora_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key):
    """EGGROLL's factors ``A`` ``(a, r)`` and ``B`` ``(b, r)``, both multiplied by the baseline mask."""
    a, b = param.shape
    mask, true_epoch, pair, sigma = _member_coordinates(frozen_noiser_params, base_sigma, iterinfo, param.dtype)
    draw = jax.random.normal(
        member_key(key, true_epoch, pair), (a + b, frozen_noiser_params["rank"]), dtype=param.dtype
    )
    B = draw[:b]
    A = draw[b:] * mask
    B = B * mask
    return A * sigma, B


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


class EggRollBS(ESNoiser):
    """EGGROLL whose groups carry two unperturbed baseline members."""

    update_fns = _UPDATE_FNS
    noise_fn = staticmethod(get_nonlora_update_params)

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
