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

from . import _estimators, _update
from ._es_noiser import ESNoiser
from ._fitness import baseline_fitnesses
from ._member import member_key

__all__ = ["EggRollBS", "get_lora_update_params", "get_nonlora_update_params"]


def _noise_mask(thread_id, group_size, dtype):
    """1 for perturbed members (``thread_id % G >= 2``), 0 for each group's positions 0 and 1, in
    ``dtype``.

    With ``group_size == 0`` every member is masked (JAX's integer ``mod`` by 0 gives 0).
    """
    return (jnp.mod(thread_id, jnp.asarray(group_size)) >= 2).astype(dtype)


def _member_coordinates(frozen_noiser_params, base_sigma, iterinfo):
    """``(noise epoch, pair index, signed sigma)`` of one member.

    Same values as ``_member.member_coordinates``, computed as upstream's baseline noiser does:
    the noise epoch through ``where`` and the sign as a multiplication by ``+-1.0``.
    """
    epoch, thread_id = iterinfo
    noise_reuse = frozen_noiser_params["noise_reuse"]
    # floor_divide, not //, so a Python-int epoch with noise_reuse=0 does not raise.
    true_epoch = jnp.where(noise_reuse == 0, 0, jnp.floor_divide(epoch, noise_reuse))
    pair = thread_id // 2
    sigma = base_sigma * jnp.where((thread_id % 2) == 0, 1.0, -1.0)
    return true_epoch, pair, sigma


def get_nonlora_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key):
    """EGGROLL's full noise ``(param.shape)`` times the member's 0/1 baseline mask."""
    true_epoch, pair, sigma = _member_coordinates(frozen_noiser_params, base_sigma, iterinfo)
    mask = _noise_mask(iterinfo[1], frozen_noiser_params["group_size"], param.dtype)
    draw = jax.random.normal(member_key(key, true_epoch, pair), param.shape, dtype=param.dtype)
    return draw * sigma * mask


def get_lora_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key):
    """EGGROLL's factors ``A (a, r)`` and ``B (b, r)``, both times the member's 0/1 baseline mask."""
    a, b = param.shape
    true_epoch, pair, sigma = _member_coordinates(frozen_noiser_params, base_sigma, iterinfo)
    mask = _noise_mask(iterinfo[1], frozen_noiser_params["group_size"], param.dtype)
    draw = jax.random.normal(
        member_key(key, true_epoch, pair), (a + b, frozen_noiser_params["rank"]), dtype=param.dtype
    )
    B = draw[:b]
    A = draw[b:] * mask
    B = B * mask
    return A * sigma, B


class EggRollBS(ESNoiser):
    """EGGROLL whose groups carry two unperturbed baseline members, with a trust region on the step."""

    @classmethod
    def init_noiser(cls, params, sigma, lr, *args, solver=None, solver_kwargs=None, group_size=0,
                    freeze_nonlora=False, noise_reuse=0, rank=1, trust_region_norm=1.0, **kwargs):
        """Returns ``(frozen_noiser_params, noiser_params)``.

        frozen: ``group_size``, ``freeze_nonlora``, ``noise_reuse``, ``solver`` (gradient clipped to
        global norm ``trust_region_norm`` before ``solver``), ``rank``, ``trust_region_norm``.
        ``convert_fitnesses`` needs ``group_size >= 1``.
        """
        _update.check_init(group_size, noise_reuse, rank)
        true_solver = optax.chain(
            optax.clip_by_global_norm(trust_region_norm),
            _update.build_solver(lr, solver, solver_kwargs),
        )
        frozen = {"group_size": group_size, "freeze_nonlora": freeze_nonlora, "noise_reuse": noise_reuse,
                  "solver": true_solver, "rank": rank, "trust_region_norm": trust_region_norm}
        return frozen, {"sigma": sigma, "opt_state": true_solver.init(params)}

    @classmethod
    def full_noise(cls, frozen_noiser_params, base_sigma, iterinfo, param, key):
        """EGGROLL's full noise with each group's two baseline members zeroed (:func:`get_nonlora_update_params`)."""
        return get_nonlora_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key)

    @classmethod
    def lora_noise(cls, frozen_noiser_params, base_sigma, iterinfo, param, key):
        """EGGROLL's factors with each group's two baseline members zeroed (:func:`get_lora_update_params`)."""
        return get_lora_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key)

    @classmethod
    def convert_fitnesses(cls, frozen_noiser_params, noiser_params, raw_scores, num_episodes_list=None):
        """Per-direction fitnesses ``(G,)`` (see ``_fitness.baseline_fitnesses``); pass them to
        ``do_updates`` with ``G`` members' iterinfos."""
        return baseline_fitnesses(raw_scores, frozen_noiser_params["group_size"])


# Upstream's module-level names for this class's per-leaf estimators (by es class), kept so that
# code written against upstream finds them.
_simple_full_update, _simple_lora_update, _noop_update, _noop_update = _estimators.update_fns(EggRollBS)
