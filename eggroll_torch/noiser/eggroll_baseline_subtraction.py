"""EGGROLL with baseline subtraction ("eggrollbs").

The population is ``Q`` groups of ``G = group_size`` members. Within every group, members 0 and
1 get NO noise (a 0/1 mask on the factors and on full noise) and serve as the baseline; the
other members are perturbed exactly as in EGGROLL. Fitness shaping compares each group with
its own first member and averages over groups, so :meth:`EggRollBS.convert_fitnesses` returns
``G`` values, not ``N``. The solver is ``chain(clip_by_global_norm(trust_region_norm), solver)``.
"""
from __future__ import annotations

import torch

from .. import optim
from . import _estimators, _update
from ._es_noiser import ESNoiser
from ._fitness import baseline_fitnesses
from ._gaussian import draw_normal, inner_shape
from ._member import antithetic_sigma, as_members, broadcast_members

__all__ = ["EggRollBS", "get_lora_update_params", "get_nonlora_update_params"]


def _noise_mask(thread_ids: torch.Tensor, group_size: int, dtype: torch.dtype) -> torch.Tensor:
    """1 for perturbed members (``thread_id % G >= 2``), 0 for each group's positions 0 and 1, in
    ``dtype``: shape ``M``.

    With ``group_size == 0`` every member is masked (JAX's integer ``mod`` by 0 gives 0).
    """
    if group_size == 0:
        return torch.zeros(thread_ids.shape, dtype=dtype, device=thread_ids.device)
    return (thread_ids % group_size >= 2).to(dtype)


def get_nonlora_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key):
    """EGGROLL's full noise ``(*S, *M, *shape)`` times the member's 0/1 baseline mask."""
    members = as_members(iterinfo, param.device)
    shape = inner_shape(param, key)
    draws = draw_normal(frozen_noiser_params, members, param, key, shape)
    mask = _noise_mask(members.thread_ids, frozen_noiser_params["group_size"], param.dtype)
    sigma = antithetic_sigma(base_sigma, members, param.dtype)
    return draws * broadcast_members(sigma, len(shape)) * broadcast_members(mask, len(shape))


def get_lora_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key):
    """EGGROLL's factors ``A (*S, *M, a, r)`` and ``B (*S, *M, b, r)``, both times the member's 0/1
    baseline mask."""
    members = as_members(iterinfo, param.device)
    a, b = inner_shape(param, key)
    draws = draw_normal(frozen_noiser_params, members, param, key, (a + b, frozen_noiser_params["rank"]))
    mask = broadcast_members(_noise_mask(members.thread_ids, frozen_noiser_params["group_size"], param.dtype), 2)
    sigma = broadcast_members(antithetic_sigma(base_sigma, members, param.dtype), 2)
    return draws[..., b:, :] * mask * sigma, draws[..., :b, :] * mask


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
        _update.check_init(sigma, group_size, noise_reuse, rank)
        true_solver = optim.chain(optim.clip_by_global_norm(trust_region_norm),
                                  _update.build_solver(lr, solver, solver_kwargs))
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
