"""Alternative EGGROLL: the same low-rank noise, but a sign-based matrix update.

Forward passes, fitness shaping and non-matrix updates are EGGROLL's. For a matrix the update
uses only the signs of each member's factors:
``sum_n (sigma * f_n / sqrt(rank)) * sign(A_n) @ sign(B_n).T / N``, where ``A_n`` carries the
member's antithetic sign, so ``sign(A_n)`` flips between the two members of a pair.
"""
from __future__ import annotations

import torch

from ..numerics import divide_by_broadcast, sqrt, weak_scalar
from . import _estimators, _update
from ._es_noiser import ESNoiser
from ._gaussian import get_lora_update_params, get_nonlora_update_params
from ._member import broadcast_members, lora_sigma, scalar

__all__ = ["EggRoll", "get_lora_update_params", "get_nonlora_update_params"]


class EggRoll(ESNoiser):
    """EGGROLL with the sign-based matrix update (upstream's ``alteggroll.EggRoll``)."""

    @classmethod
    def init_noiser(cls, params, sigma, lr, *args, solver=None, solver_kwargs=None, group_size=0,
                    freeze_nonlora=False, noise_reuse=0, rank=1, **kwargs):
        """Returns ``(frozen_noiser_params, noiser_params)``; frozen has ``group_size``,
        ``freeze_nonlora``, ``noise_reuse``, ``solver`` and ``rank``. Extra keywords are ignored,
        ``use_batched_update`` included: this noiser always updates leaf by leaf."""
        _update.check_init(sigma, group_size, noise_reuse, rank)
        true_solver = _update.build_solver(lr, solver, solver_kwargs)
        frozen = {"group_size": group_size, "freeze_nonlora": freeze_nonlora, "noise_reuse": noise_reuse,
                  "solver": true_solver, "rank": rank}
        return frozen, {"sigma": sigma, "opt_state": true_solver.init(params)}

    @classmethod
    def matrix_gradient(cls, base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
        """Sign estimate of an ``MM_PARAM`` leaf; scales with ``base_sigma`` (= sigma)."""
        rank = frozen_noiser_params["rank"]
        A, B = cls.lora_noise(frozen_noiser_params, lora_sigma(base_sigma, rank, param.dtype, param.device),
                              iterinfo, param, key)
        scaled = weak_scalar(scalar(base_sigma, param.dtype, param.device), scores) * broadcast_members(scores, 2)
        signed = scaled * torch.sign(A)
        signed = divide_by_broadcast(signed, weak_scalar(sqrt(scalar(rank, param.dtype, param.device)), signed))
        return _estimators.divide_by_population(_estimators.contract_members(signed, torch.sign(B)), scores)


# Upstream's module-level names for this class's per-leaf estimators (by es class), kept so that
# code written against upstream finds them.
_simple_full_update, _simple_lora_update, _noop_update, _noop_update = _estimators.update_fns(EggRoll)
