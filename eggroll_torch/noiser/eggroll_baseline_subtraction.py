"""EGGROLL with baseline subtraction (``EggRollBS``).

The population is ``Q`` groups of ``G = group_size`` members. In every group members 0 and 1
carry zero noise (their scores are the baseline), each row of scores is centred on its first
member and scaled by its std, and the update weights the ``G`` directions by the column means.
The optimizer is ``chain(clip_by_global_norm(trust_region_norm), solver)``.
"""
from __future__ import annotations

import torch

from .. import optim
from . import _estimators, _forward, _update
from ._es_noiser import ESNoiser
from ._fitness import baseline_fitnesses
from ._gaussian import draw_normal, inner_shape
from ._member import antithetic_sigma, as_members, broadcast_members

__all__ = ["EggRollBS", "get_lora_update_params", "get_nonlora_update_params"]


def _is_zero_noise(thread_id, group_size):
    """Whether a member is one of its group's two unperturbed baselines (position 0 or 1)."""
    position = thread_id % group_size
    return (position == 0) | (position == 1)


def _noise_mask(thread_ids: torch.Tensor, group_size: int, dtype: torch.dtype) -> torch.Tensor:
    """1 for perturbed members, 0 for each group's positions 0 and 1; shape ``M``.

    With ``group_size == 0`` every member is masked (JAX's integer ``mod`` by 0 gives 0).
    """
    if group_size == 0:
        return torch.zeros(thread_ids.shape, dtype=dtype, device=thread_ids.device)
    return (thread_ids % group_size >= 2).to(dtype)


def get_nonlora_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key):
    """Full noise ``(*S, *M, *shape)``: ``normal * (+-base_sigma) * mask``."""
    members = as_members(iterinfo, param.device)
    shape = inner_shape(param, key)
    draws = draw_normal(frozen_noiser_params, members, param, key, shape)
    mask = _noise_mask(members.thread_ids, frozen_noiser_params["group_size"], param.dtype)
    sigma = antithetic_sigma(base_sigma, members, param.dtype)
    return draws * broadcast_members(sigma, len(shape)) * broadcast_members(mask, len(shape))


def get_lora_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key):
    """EGGROLL's factors with both ``A`` and ``B`` zeroed for the unperturbed members."""
    members = as_members(iterinfo, param.device)
    a, b = inner_shape(param, key)
    draws = draw_normal(frozen_noiser_params, members, param, key, (a + b, frozen_noiser_params["rank"]))
    mask = broadcast_members(_noise_mask(members.thread_ids, frozen_noiser_params["group_size"], param.dtype), 2)
    sigma = broadcast_members(antithetic_sigma(base_sigma, members, param.dtype), 2)
    return draws[..., b:, :] * mask * sigma, draws[..., :b, :] * mask


def _simple_lora_update(base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """``sum_n f_n A_n @ B_n.T / N`` with the masked factors."""
    return _estimators.low_rank_gradient(get_lora_update_params, base_sigma, param, key, scores, iterinfo,
                                         frozen_noiser_params)


def _simple_full_update(base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
    """``mean_n(f_n * noise_n)`` with the masked noise (zeros with ``freeze_nonlora``)."""
    return _estimators.nonlora_gradient(get_nonlora_update_params, base_sigma, param, key, scores, iterinfo,
                                        frozen_noiser_params)


_noop_update = _estimators.zero_gradient


class EggRollBS(ESNoiser):
    """EGGROLL with per-group baseline subtraction and a trust region on the step."""

    update_fns = (_simple_full_update, _simple_lora_update, _noop_update, _noop_update)
    noise_fn = staticmethod(get_nonlora_update_params)

    @classmethod
    def init_noiser(cls, params, sigma, lr, *args, solver=None, solver_kwargs=None, group_size=0,
                    freeze_nonlora=False, noise_reuse=0, rank=1, trust_region_norm=1.0, **kwargs):
        """Returns ``(frozen_noiser_params, noiser_params)``; frozen has ``group_size``,
        ``freeze_nonlora``, ``noise_reuse``, ``solver`` (the clipped chain), ``rank`` and
        ``trust_region_norm``. ``convert_fitnesses`` needs ``group_size >= 1``."""
        _update.check_init(sigma, group_size, noise_reuse, rank)
        solver_ = optim.chain(optim.clip_by_global_norm(trust_region_norm),
                              _update.build_solver(lr, solver, solver_kwargs))
        frozen = {"group_size": group_size, "freeze_nonlora": freeze_nonlora, "noise_reuse": noise_reuse,
                  "solver": solver_, "rank": rank, "trust_region_norm": trust_region_norm}
        return frozen, {"sigma": sigma, "opt_state": solver_.init(params)}

    @classmethod
    def do_mm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ param.T + x @ B @ A.T`` with the masked factors."""
        return _forward.low_rank_mm(get_lora_update_params, frozen_noiser_params, noiser_params, param, base_key,
                                    iterinfo, x, transposed=False)

    @classmethod
    def do_Tmm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ param + x @ A @ B.T`` with the masked factors."""
        return _forward.low_rank_mm(get_lora_update_params, frozen_noiser_params, noiser_params, param, base_key,
                                    iterinfo, x, transposed=True)

    @classmethod
    def convert_fitnesses(cls, frozen_noiser_params, noiser_params, raw_scores, num_episodes_list=None):
        """Per-direction fitnesses ``(G,)`` (see ``_fitness.baseline_fitnesses``); pass them to
        ``do_updates`` with ``G`` members' iterinfos."""
        return baseline_fitnesses(raw_scores, frozen_noiser_params["group_size"])
