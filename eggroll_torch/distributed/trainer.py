"""``DistributedTrainer``: one ``EggrollTrainer`` per rank, the population split across ranks.

Every rank holds the full model and the same trainer state. One generation:

1. rank ``r`` builds the perturbed members of its contiguous range of thread ids
   (:mod:`.partition`: whole antithetic pairs) and runs ``fitness_fn`` on them;
2. the raw scores are all-gathered into the full ``(N,)`` vector, the same bits on every rank
   (:mod:`.fitness_exchange`); only these N numbers cross the network;
3. every rank calls the single-process ``EggrollTrainer.update`` on that vector: the same code,
   inputs and reduction order as a single-process run, so parameters and optimizer state stay
   bit-identical across ranks without sending any weights, and equal the single-process run's
   for any world size (as long as ``fitness_fn`` scores a member the same whichever rank and
   batch it runs in). With ``update="sharded"`` the per-parameter gradient estimates inside
   that update are split over the ranks and their bytes all-gathered (:mod:`.sharded_update`):
   the same values, a fraction of the work.

Nothing in the trainer state depends on the world size, so a checkpoint (the plain
``EggrollTrainer.state_dict()``) resumes on any number of ranks, or in a single process.

Failures end the run on every rank instead of hanging or drifting apart: a dead or late rank
makes its peers' next collective raise :class:`RankFailureError` within the process group's
timeout; a rank whose ``fitness_fn`` raises tells its peers in the fitness exchange; a rank
stuck in ``fitness_fn`` is interrupted by a :class:`Watchdog` after ``timeout_s``; and every
``check_every`` epochs a checksum of the state is compared across ranks (:class:`DivergenceError`).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping

import torch
import torch.distributed as dist

from eggroll_torch.nn import EggrollTrainer, Population
from eggroll_torch.validation import check_count, check_positive_real
from . import checksum
from .collectives import agree, group_device
from .fitness_exchange import check_local_fitness, gather_fitness
from .partition import blocks_of, member_ranges
from .sharded_update import ShardedUpdates, sharding_problem
from .watchdog import Watchdog

UPDATES = ("auto", "sharded", "replicated")

FitnessFn = Callable[[Population, range], torch.Tensor]


class DistributedTrainer:
    """Spreads ``trainer``'s population over the ranks of ``group`` (default: the whole world).

    Args:
        trainer: this rank's ``EggrollTrainer``, built identically on every rank (same module
            initialization, seed and settings); construction verifies this with a checksum of
            the state and settings and raises :class:`DivergenceError` on every rank otherwise.
        group: the process group (``torch.distributed`` must be initialized, e.g. by
            :func:`init_distributed`); its backend's device must be the trainer's (NCCL: the
            rank's GPU; gloo: CPU).
        check_every: compare a checksum of the trainer state across ranks after every epoch
            that is a multiple of this (0 never; the construction-time check always runs).
        timeout_s: the watchdog deadline of this rank's ``fitness_fn``; ``None`` disables it.
            Use the process group's timeout, so that a stuck rank and its waiting peers fail
            at about the same time.
        members_per_call: ``None`` (default) calls ``fitness_fn`` once on all of this rank's
            members. An even number ``c`` deals the population out in blocks of ``c`` members
            and calls ``fitness_fn`` once per block, so every call has the same shape whatever
            the world size (bit-identity where kernels choose their algorithm by shape, as
            cuBLAS does) and memory is bounded by ``c`` members. The single-process equivalent
            then evaluates the same blocks (see :meth:`step`).
        update: ``"replicated"``: every rank computes the whole update. ``"sharded"``: each
            parameter's gradient estimate is computed by one rank and sent to the others
            (needs an ES noiser without ``use_batched_update``). ``"auto"`` (default): sharded
            when possible. Both give the single-process result bit for bit.

    Construction, :meth:`step`, :meth:`check_in_sync`, :meth:`load_state_dict`,
    :meth:`save_checkpoint` and :meth:`load_checkpoint` are collective: every rank calls them
    in the same order. Change the trainer only through this object.
    """

    def __init__(
        self,
        trainer: EggrollTrainer,
        *,
        group=None,
        check_every: int = 10,
        timeout_s: float | None = 600.0,
        members_per_call: int | None = None,
        update: str = "auto",
    ):
        if not isinstance(trainer, EggrollTrainer):
            raise TypeError(f"trainer must be an eggroll_torch.nn.EggrollTrainer, got {type(trainer).__name__}")
        if not dist.is_initialized():
            raise RuntimeError(
                "torch.distributed is not initialized; call eggroll_torch.distributed.init_distributed() "
                "(under torchrun) before building a DistributedTrainer"
            )
        self.check_every = check_count("check_every", check_every, 0)
        if timeout_s is not None:
            timeout_s = check_positive_real("timeout_s", timeout_s)
        if members_per_call is not None and check_count("members_per_call", members_per_call, 2) % 2:
            raise ValueError(
                f"members_per_call must be even so that antithetic pairs stay together, got {members_per_call}"
            )
        if update not in UPDATES:
            raise ValueError(f"update must be one of {UPDATES}, got {update!r}")
        comm_device = group_device(group)
        if comm_device.type != trainer.device.type or (comm_device.type == "cuda" and comm_device != trainer.device):
            raise ValueError(
                f"the process group's backend {dist.get_backend(group)!r} communicates on {comm_device} but "
                f"the trainer's parameters are on {trainer.device}; use NCCL with each rank's model on "
                "its own GPU (cuda:LOCAL_RANK), or gloo with the model on the CPU"
            )
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        self.members_per_call = members_per_call
        self.ranges = member_ranges(trainer.population_size, self.world_size, members_per_call or 2)
        self.trainer = trainer
        self.group = group
        self._comm_device = comm_device
        self._watchdog = None if timeout_s is None else Watchdog(timeout_s)
        if update == "auto":
            update = "replicated" if self.world_size == 1 or sharding_problem(trainer) else "sharded"
        self.update_mode = update
        self._sharded = (
            ShardedUpdates(trainer, rank=self.rank, world_size=self.world_size, group=group, comm_device=comm_device)
            if update == "sharded"
            else None
        )
        checksum.check_in_sync(
            {"settings": self._settings(), "state": trainer.state_dict()}, device=comm_device, group=group,
            when="when the DistributedTrainer was built (trainer settings or initial state)",
        )

    def _settings(self) -> dict:
        """What every rank's trainer must agree on besides its state: the population, the noiser
        and its plain settings, the ES classes and the update mode."""
        plain = (bool, int, float, str)
        frozen = {k: v for k, v in self.trainer.frozen_noiser_params.items() if isinstance(v, plain)}
        return {"population_size": self.trainer.population_size, "noiser": self.trainer.noiser.__name__,
                "frozen": frozen, "es_classes": dict(self.trainer.es_classes), "update": self.update_mode,
                "members_per_call": self.members_per_call}

    @property
    def members(self) -> range:
        """The thread ids this rank evaluates."""
        return self.ranges[self.rank]

    def population(self) -> Population:
        """This rank's members of the current epoch as one callable (size ``len(members)``)."""
        return self.trainer.population(self.members)

    def step(self, fitness_fn: FitnessFn) -> dict:
        """One generation on every rank; returns the trainer's metrics (the same on every rank).

        ``fitness_fn(population, members)`` gets this rank's :meth:`population` and its thread
        ids ``members`` (a ``range``; member ``j`` of the population is thread id
        ``members.start + j``) and returns their raw scores, shape ``(len(members),)``, on the
        trainer's device. The single-process equivalent is
        ``trainer.step(lambda pop: fitness_fn(pop, range(N)))``; with ``members_per_call=c``
        it is ``trainer.update(torch.cat([fitness_fn(trainer.population(r), r) for r in
        blocks_of(range(N), c)]))``, ``fitness_fn`` being called once per block of ``c``.
        """
        when = f"in epoch {self.trainer.epoch}"
        section = (
            contextlib.nullcontext()
            if self._watchdog is None
            else self._watchdog.armed(f"rank {self.rank}: fitness_fn for thread ids {self.members.start}.."
                                      f"{self.members.stop - 1} {when}")
        )
        try:
            with section:
                scores = self._evaluate(fitness_fn)
            outcome = check_local_fitness(scores, self.members, self.trainer.device)
        except Exception as error:  # every failure must reach the peers through the exchange
            outcome = error
        raw = gather_fitness(
            outcome, self.ranges, comm_device=self._comm_device, out_device=self.trainer.device,
            group=self.group, when=when,
        )
        with contextlib.nullcontext() if self._sharded is None else self._sharded.installed(self.trainer):
            metrics = self.trainer.update(raw)
        if self.check_every and self.trainer.epoch % self.check_every == 0:
            self.check_in_sync(when=f"after epoch {metrics['epoch']}")
        return metrics

    def _evaluate(self, fitness_fn: FitnessFn) -> torch.Tensor:
        if self.members_per_call is None:
            return fitness_fn(self.population(), self.members)
        scores = []
        for block in blocks_of(self.members, self.members_per_call):
            scores.append(check_local_fitness(fitness_fn(self.trainer.population(block), block), block,
                                              self.trainer.device))
        return torch.cat(scores)

    def check_in_sync(self, *, when: str = "on request") -> int:
        """Compare the checksum of the trainer state across ranks; returns it, or raises
        :class:`DivergenceError` on every rank."""
        return checksum.check_in_sync(self.trainer.state_dict(), device=self._comm_device, group=self.group, when=when)

    def state_dict(self) -> dict:
        """The trainer's ``state_dict()``: identical on every rank, independent of the world size."""
        return self.trainer.state_dict()

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Load the same ``EggrollTrainer`` state on every rank (saved with any world size)."""
        error = None
        try:
            self.trainer.load_state_dict(state_dict)
        except Exception as caught:  # the peers must learn that this rank did not load
            error = caught
        agree(error, group=self.group, what="loading the trainer state")
        self.check_in_sync(when="after load_state_dict")

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Write the trainer state to ``path`` (rank 0 writes, atomically; every rank returns once
        it exists). Resume with :meth:`load_checkpoint` on any world size, or in one process with
        ``trainer.load_state_dict(torch.load(path))``."""
        self.check_in_sync(when=f"before saving {os.fspath(path)!r}")
        error = None
        if self.rank == 0:
            try:
                _atomic_save(self.trainer.state_dict(), path)
            except Exception as caught:  # the peers must learn that no checkpoint was written
                error = caught
        agree(error, group=self.group, what=f"writing the checkpoint {os.fspath(path)!r}")

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Every rank reads ``path`` (which must be visible to every node) and loads it."""
        error, state_dict = None, None
        try:
            state_dict = torch.load(path, map_location=self.trainer.device, weights_only=True)
        except Exception as caught:  # the peers must learn that this rank could not read it
            error = caught
        agree(error, group=self.group, what=f"reading the checkpoint {os.fspath(path)!r}")
        self.load_state_dict(state_dict)


def _atomic_save(state_dict: Mapping, path: str | os.PathLike) -> None:
    """``torch.save`` through a temporary file and a rename, so ``path`` is never half-written."""
    path = os.fspath(path)
    partial = f"{path}.partial-{os.getpid()}"
    try:
        torch.save(state_dict, partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
