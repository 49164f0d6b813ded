"""Alternative EGGROLL: EGGROLL's noise, but the matrix update uses only the signs of the factors,
``sum_n (sigma * f_n / sqrt(rank)) * sign(A_n) @ sign(B_n).T / N``."""
from __future__ import annotations

import torch

from ..numerics import divide_by_broadcast, sqrt, weak_scalar
from . import _estimators, _forward, _update
from ._es_noiser import ESNoiser
from ._gaussian import get_lora_update_params, get_nonlora_update_params
from ._member import broadcast_members, lora_sigma, scalar

__all__ = ["EggRoll", "get_lora_update_params", "get_nonlora_update_params"]


def _simple_full_update(base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """``mean_n(f_n * noise_n)`` for a ``PARAM`` leaf (zeros with ``freeze_nonlora``)."""
    return _estimators.nonlora_gradient(get_nonlora_update_params, base_sigma, param, key, scores, iterinfo,
                                        frozen_noiser_params)


def _simple_lora_update(base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """Sign estimate for an ``MM_PARAM`` leaf; ``A``'s sign includes the member's antithetic sign."""
    rank = frozen_noiser_params["rank"]
    A, B = get_lora_update_params(frozen_noiser_params, lora_sigma(base_sigma, rank, param.dtype, param.device),
                                  iterinfo, param, key)
    scaled = weak_scalar(scalar(base_sigma, param.dtype, param.device), scores) * broadcast_members(scores, 2)
    signed = scaled * torch.sign(A)
    signed = divide_by_broadcast(signed, weak_scalar(sqrt(scalar(rank, param.dtype, param.device)), signed))
    return _estimators.divide_by_population(_estimators.contract_members(signed, torch.sign(B)), scores)


_noop_update = _estimators.zero_gradient


class EggRoll(ESNoiser):
    """EGGROLL with the sign-based matrix update (upstream's ``alteggroll.EggRoll``)."""

    update_fns = (_simple_full_update, _simple_lora_update, _noop_update, _noop_update)
    noise_fn = staticmethod(get_nonlora_update_params)

    @classmethod
    def init_noiser(cls, params, sigma, lr, *args, solver=None, solver_kwargs=None, group_size=0,
                    freeze_nonlora=False, noise_reuse=0, rank=1, **kwargs):
        """Returns ``(frozen_noiser_params, noiser_params)``; frozen has ``group_size``,
        ``freeze_nonlora``, ``noise_reuse``, ``solver`` and ``rank``."""
        _update.check_init(sigma, group_size, noise_reuse, rank)
        solver_ = _update.build_solver(lr, solver, solver_kwargs)
        frozen = {"group_size": group_size, "freeze_nonlora": freeze_nonlora, "noise_reuse": noise_reuse,
                  "solver": solver_, "rank": rank}
        return frozen, {"sigma": sigma, "opt_state": solver_.init(params)}

    @classmethod
    def do_mm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ param.T + x @ B @ A.T`` (EGGROLL's forward)."""
        return _forward.low_rank_mm(get_lora_update_params, frozen_noiser_params, noiser_params, param, base_key,
                                    iterinfo, x, transposed=False)

    @classmethod
    def do_Tmm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ param + x @ A @ B.T``."""
        return _forward.low_rank_mm(get_lora_update_params, frozen_noiser_params, noiser_params, param, base_key,
                                    iterinfo, x, transposed=True)
