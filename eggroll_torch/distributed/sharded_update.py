"""The update split by parameter across ranks, each gradient computed by the single-process code.

In a single process, ``do_updates`` maps the noiser's per-leaf estimator (``_leaf_update``) over
the parameters, then hands the gradients to the solver (``apply_solver``). Computing the
estimate is most of the update's work (every member's noise regenerated and contracted), and it
is independent per parameter. Here each parameter gets one owner rank (:func:`assign_owners`),
which runs that very estimator on the full fitness vector; the gradients are all-gathered as raw
bytes, and every rank runs the solver on the complete gradient tree. Each gradient is computed
once, by the same function on the same inputs as in a single process, and copied bit for bit,
so the result is the single-process update for any world size. Only the gradients' bytes are
sent, once per generation; nothing is summed across ranks.

Parameters with no update (``EMB_PARAM``, ``EXCLUDED``, and ``PARAM`` under ``freeze_nonlora``)
are computed (as zeros) on every rank rather than sent.
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping

import torch

from eggroll_torch.models.common import EMB_PARAM, EXCLUDED, MM_PARAM, PARAM
from eggroll_torch.nn import EggrollTrainer
from eggroll_torch.nn.param_tree import flatten_paths, nest
from eggroll_torch.noiser import _update
from eggroll_torch.noiser._es_noiser import ESNoiser
from .collectives import all_gather_rows

# Bytes between the starts of two gradients in a rank's buffer, so every slice can be viewed
# as any dtype.
_ALIGN = 16
# Rough cost of drawing one normal, in multiply-adds, for balancing owners.
_DRAW_COST = 32


def sharding_problem(trainer: EggrollTrainer) -> str | None:
    """Why ``trainer``'s update cannot be split by parameter, or ``None`` when it can."""
    noiser = trainer.noiser
    if not (isinstance(noiser, type) and issubclass(noiser, ESNoiser)):
        return f"noiser {noiser.__name__} has no per-parameter estimator"
    if noiser.do_updates.__func__ is not ESNoiser.do_updates.__func__:
        return f"noiser {noiser.__name__} overrides do_updates"
    if trainer.frozen_noiser_params.get("use_batched_update", False):
        return "use_batched_update=True estimates same-shaped parameters together"
    return None


def leaf_cost(param: torch.Tensor, es_class: int, rank: int | None) -> int:
    """Relative work of estimating one parameter's gradient: drawing every member's noise and
    contracting it. ``rank``: the low-rank noise's rank, ``None`` for full-rank noise."""
    if es_class == MM_PARAM and rank is not None and param.ndim >= 2:
        rows, cols = param.shape[-2], param.shape[-1]
        return param.numel() * rank + (param.numel() // (rows * cols)) * (rows + cols) * rank * _DRAW_COST
    return param.numel() * _DRAW_COST


def assign_owners(costs: Mapping[str, int], world_size: int) -> dict[str, int | None]:
    """``{path: owner rank}``, ``None`` for zero-cost parameters (every rank computes those).

    Greedy balancing, identical on every rank: parameters by decreasing cost (ties by path) each
    go to the least loaded rank (ties to the lowest rank).
    """
    owners: dict[str, int | None] = {path: None for path, cost in costs.items() if cost == 0}
    load = [0] * world_size
    for path in sorted((p for p, c in costs.items() if c > 0), key=lambda p: (-costs[p], p)):
        owner = min(range(world_size), key=lambda r: (load[r], r))
        owners[path] = owner
        load[owner] += costs[path]
    return owners


class ShardedUpdates:
    """Stands in for ``trainer.noiser`` during ``trainer.update``: ``do_updates`` estimates this
    rank's parameters, exchanges the gradients and applies the solver; everything else is the
    noiser's own (attribute access is forwarded)."""

    def __init__(self, trainer: EggrollTrainer, *, rank: int, world_size: int, group, comm_device: torch.device):
        problem = sharding_problem(trainer)
        if problem is not None:
            raise ValueError(f"update='sharded' is not possible: {problem}; use update='replicated'")
        self._noiser = trainer.noiser
        self._rank, self._world_size = rank, world_size
        self._group, self._comm_device = group, comm_device
        params = dict(trainer.module.named_parameters())
        freeze = trainer.frozen_noiser_params.get("freeze_nonlora", False)
        noise_rank = trainer.frozen_noiser_params.get("rank")
        costs = {
            path: 0 if (es_class in (EMB_PARAM, EXCLUDED) or (es_class == PARAM and freeze))
            else leaf_cost(params[path], es_class, noise_rank)
            for path, es_class in trainer.es_classes.items()
        }
        self.owners = assign_owners(costs, world_size)

    def __getattr__(self, name):
        return getattr(self._noiser, name)

    @contextlib.contextmanager
    def installed(self, trainer: EggrollTrainer):
        """Inside the ``with`` block the trainer's update is sharded: ``trainer.noiser`` is this
        object (the functional update) and its pair engine asks :meth:`gradients` (EGGROLL)."""
        trainer.noiser, trainer._sharding = self, self
        try:
            yield
        finally:
            trainer.noiser, trainer._sharding = self._noiser, None

    def gradients(self, compute, flat_params: Mapping[str, torch.Tensor]) -> dict:
        """Every parameter's gradient: ``compute(paths) -> {path: gradient}`` run on this rank's
        parameters, the others received from their owners, bit for bit."""
        grads = dict(compute([path for path, owner in self.owners.items() if owner is None or owner == self._rank]))
        grads.update(self._exchange(grads, flat_params))
        return {path: grads[path] for path in flat_params}

    def do_updates(self, frozen_noiser_params, noiser_params, params, base_keys, fitnesses, iterinfos, es_map):
        """``ESNoiser.do_updates`` (unbatched) with the estimates spread over the ranks."""
        _update.check_update(noiser_params, params, base_keys, fitnesses, iterinfos, es_map)
        estimate = self._noiser._leaf_update(frozen_noiser_params, noiser_params, fitnesses, iterinfos)
        flat_params, flat_keys, flat_classes = (flatten_paths(t) for t in (params, base_keys, es_map))
        grads = self.gradients(
            lambda paths: {path: estimate(flat_params[path], flat_keys[path], flat_classes[path]) for path in paths},
            flat_params,
        )
        return _update.apply_solver(frozen_noiser_params, noiser_params, params, nest(grads))

    def _layout(self, flat_params: Mapping[str, torch.Tensor]) -> tuple[list[list[tuple[str, int]]], int]:
        """Per rank, ``(path, byte offset)`` of its gradients in its buffer; the buffer length."""
        slots, sizes = [[] for _ in range(self._world_size)], [0] * self._world_size
        for path in sorted(p for p, owner in self.owners.items() if owner is not None):
            owner = self.owners[path]
            slots[owner].append((path, sizes[owner]))
            nbytes = flat_params[path].numel() * flat_params[path].element_size()
            sizes[owner] += -(-nbytes // _ALIGN) * _ALIGN
        return slots, max(sizes)

    def _exchange(self, grads: Mapping[str, torch.Tensor], flat_params: Mapping[str, torch.Tensor]) -> dict:
        """The other ranks' gradients, bit for bit, as ``{path: tensor}`` on the params' device."""
        slots, width = self._layout(flat_params)
        if self._world_size == 1 or width == 0:
            return {}
        mine = torch.zeros(width, dtype=torch.uint8, device=self._comm_device)
        for path, offset in slots[self._rank]:
            raw = grads[path].detach().contiguous().view(-1).view(torch.uint8)
            mine[offset:offset + raw.numel()] = raw.to(self._comm_device)
        rows = all_gather_rows(mine, group=self._group, what="the gradient exchange of the sharded update")
        received = {}
        for owner in range(self._world_size):
            if owner == self._rank:
                continue
            for path, offset in slots[owner]:
                like = flat_params[path]
                nbytes = like.numel() * like.element_size()
                received[path] = rows[owner, offset:offset + nbytes].view(like.dtype).view(like.shape).to(like.device)
        return received
