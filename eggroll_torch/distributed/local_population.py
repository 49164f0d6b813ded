"""The members one rank evaluates: a :class:`~eggroll_torch.nn.Population` over a contiguous
range of thread ids instead of all N.

Noise is drawn exactly as :meth:`EggrollTrainer.population` draws it, by the same functional
calls, only with ``iterinfo = (epochs, thread_ids)`` restricted to the rank's range: every draw
is a function of ``(key, epoch, thread_id)`` alone, so member ``i`` sees the same perturbation
here as in a single-process run, and the rank draws ``len(members) / N`` of the noise.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from eggroll_torch.models.common import MM_PARAM, PARAM
from eggroll_torch.nn import EggrollTrainer, Population
from eggroll_torch.nn.es_classes import named_parameters_with_owner
from eggroll_torch.nn.noisers import low_rank_factors


def members_iterinfo(trainer: EggrollTrainer, members: range) -> tuple[torch.Tensor, torch.Tensor]:
    """``(epochs, thread_ids)`` of ``members`` in the trainer's current epoch: int32 ``(len(members),)``."""
    return (
        torch.full((len(members),), trainer.epoch, dtype=torch.int32, device=trainer.device),
        torch.arange(members.start, members.stop, dtype=torch.int32, device=trainer.device),
    )


def local_population(trainer: EggrollTrainer, members: range, is_current: Callable[[], bool]) -> Population:
    """The current epoch's members ``members`` (thread ids) of ``trainer`` as one callable of
    size ``len(members)``; its member ``j`` is thread id ``members.start + j``.

    ``is_current()`` tells whether the trainer's parameters are still those it was built from.
    """
    params = {path: p.detach() for path, _, _, p in named_parameters_with_owner(trainer.module)}
    frozen, noiser_params, keys = trainer._frozen, trainer.noiser_params, trainer.keys
    iterinfo = members_iterinfo(trainer, members)
    values, factors = {}, {}
    for path, param in params.items():
        es_class = trainer.es_classes[path]
        if es_class == MM_PARAM:
            drawn = low_rank_factors(trainer.noiser, frozen, noiser_params, param, keys[path], iterinfo)
            if drawn is not None:
                factors[path] = drawn
        elif es_class == PARAM:
            noisy = trainer.noiser.get_noisy_standard(frozen, noiser_params, param, keys[path], iterinfo)
            if noisy.ndim == param.ndim + 1:
                values[path] = noisy
    matrices = [path for path, es_class in trainer.es_classes.items() if es_class == MM_PARAM]
    vectorized = len(factors) == len(matrices)

    def member_routes(index: int) -> dict:
        thread_iterinfo = (trainer.epoch, members.start + index)

        def route_for(path):
            return lambda x, weight: trainer.noiser.do_mm(frozen, noiser_params, weight, keys[path], thread_iterinfo, x)

        return {path: route_for(path) for path in matrices}

    return Population(
        trainer.module,
        size=len(members),
        epoch=trainer.epoch,
        shared=params,
        values=values,
        factors=factors if vectorized else None,
        member_routes=None if vectorized else member_routes,
        is_current=is_current,
    )
