"""The problem the distributed tests train, and the rank programs that train it.

Every rank builds the same trainer (``torch.manual_seed`` before the module) and scores member
``i`` on inputs that depend on its thread id only, so a member's raw fitness does not depend on
which rank, or how many members together, evaluate it. The single-process reference runs the
same ``fitness`` with ``members = range(N)``.
"""
from __future__ import annotations

import os
import time
import traceback

import torch
from torch import nn

from eggroll_torch.distributed import (
    DistributedTrainer,
    DivergenceError,
    RankFailureError,
    blocks_of,
    init_distributed,
)
from eggroll_torch.nn import EXCLUDED, EggrollTrainer

POPULATION = 18
ROWS = 5
# members_per_call of the block-wise run: 18 members = 4 + 4 + 4 + 4 + 2.
BLOCK = 4


CONFIGS = {
    "eggroll": {},
    "open_es": {"noiser": "open_es"},
    "excluded_adamw": {"solver": "adamw", "es_classes": {"0.bias": EXCLUDED}},
    "redrawn": {"keep_noise": False},
}


def make_trainer(config: str = "eggroll", device="cpu") -> EggrollTrainer:
    """A 2-layer MLP with biases (MM_PARAM weights, PARAM biases) and Adam state, or one of the
    variations in ``CONFIGS``, on ``device``."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3))
    options = {"noiser": "eggroll", "solver": "adam", **CONFIGS[config]}
    return EggrollTrainer(model, sigma=0.05, lr=0.02, population_size=POPULATION, rank=2, noise_reuse=1,
                          seed=7, device=device, **options)


def fitness_on(device):
    """``fitness(population, members)`` for a model on ``device``: minus the mean squared error
    of each member on inputs ``(len(members), ROWS, 6)`` that depend on its thread id only."""
    data = torch.randn(POPULATION, ROWS, 6, generator=torch.Generator().manual_seed(11)).to(device)
    targets = torch.sin(data[..., :3]) + data[..., 3:]

    def fitness(population, members: range) -> torch.Tensor:
        x, y = data[members.start:members.stop], targets[members.start:members.stop]
        return -((population(x) - y) ** 2).mean(dim=(1, 2))

    return fitness


def reference_states(epochs: int, config: str = "eggroll", device="cpu", block: int | None = None) -> list[dict]:
    """Single-process ``state_dict()`` after every epoch ``0 .. epochs`` (index = epoch); with
    ``block``, fitnesses are computed one block of members per call, as ``members_per_call`` does."""
    trainer = make_trainer(config, device)
    fitness = fitness_on(device)
    states = [trainer.state_dict()]
    for _ in range(epochs):
        if block is None:
            trainer.step(lambda population: fitness(population, range(POPULATION)))
        else:
            blocks = blocks_of(range(POPULATION), block)
            trainer.update(torch.cat([fitness(trainer.population(members), members) for members in blocks]))
        states.append(trainer.state_dict())
    return states


def _error(error: BaseException, started: float) -> dict:
    return {"type": type(error).__name__, "message": str(error), "after_s": time.monotonic() - started,
            "traceback": traceback.format_exc()}


def _conformance(distributed: DistributedTrainer, out: str, options: dict) -> dict:
    """Fresh run with a checkpoint at epoch 2, a resume from the single-process checkpoint, an
    OpenES run (member-by-member forward), a run with the other update mode, a sharded run that
    redraws its noise (``keep_noise=False``), a failing
    fitness_fn and a tampered rank."""
    device = distributed.trainer.device
    fitness = fitness_on(device)
    result = {"members": distributed.members, "update_mode": distributed.update_mode}
    for _ in range(2):
        distributed.step(fitness)
    distributed.save_checkpoint(os.path.join(out, "distributed_epoch2.pt"))
    for _ in range(2):
        distributed.step(fitness)
    result["final"] = distributed.state_dict()

    distributed.load_checkpoint(options["single_checkpoint"])
    for _ in range(2):
        distributed.step(fitness)
    result["resumed_from_single"] = distributed.state_dict()

    for config, update in (("open_es", "auto"), ("excluded_adamw", "sharded"), ("excluded_adamw", "replicated"),
                           ("redrawn", "sharded")):
        other = DistributedTrainer(make_trainer(config, device), check_every=1, timeout_s=20, update=update)
        for _ in range(2):
            other.step(fitness)
        result[config, update] = other.state_dict()
    in_blocks = DistributedTrainer(make_trainer(device=device), check_every=1, timeout_s=20,
                                   members_per_call=BLOCK)
    for _ in range(2):
        in_blocks.step(fitness)
    result["blocks"] = in_blocks.state_dict()

    def failing(population, members):
        if distributed.rank == 1:
            raise ValueError("fitness_fn failed on purpose")
        return fitness(population, members)

    before = distributed.check_in_sync()
    started = time.monotonic()
    try:
        distributed.step(failing)
    except Exception as error:  # recorded for the test to inspect
        result["failing_fitness"] = _error(error, started)
    result["unchanged_after_failure"] = distributed.check_in_sync() == before

    if distributed.rank == 1:
        with torch.no_grad():
            distributed.trainer.module[0].bias[0] += 1e-3
    try:
        distributed.check_in_sync()
    except DivergenceError as error:
        result["divergence"] = _error(error, time.monotonic())
    return result


def _failure(distributed: DistributedTrainer, out: str, options: dict) -> dict:
    """Two good epochs with a checkpoint after the first, then rank 1 dies or hangs in epoch 2."""
    fitness = fitness_on(distributed.trainer.device)
    distributed.step(fitness)
    distributed.save_checkpoint(os.path.join(out, "before_failure.pt"))
    distributed.step(fitness)

    def broken(population, members):
        if distributed.rank == 1:
            if options["mode"] == "die":
                os._exit(17)
            time.sleep(options["sleep_s"])
        return fitness(population, members)

    started = time.monotonic()
    try:
        distributed.step(broken)
    except RankFailureError as error:
        return {"error": _error(error, started)}
    return {"error": None}


SCENARIOS = {"conformance": _conformance, "failure": _failure}


def run_rank(scenario: str, rank: int, world_size: int, port: int, out: str, options: dict) -> None:
    """One rank: join the process group (``options["backend"]``, default gloo), run the
    scenario, write ``<out>/rank<r>.pt``, exit."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    started = time.monotonic()
    try:
        device = init_distributed(options.get("backend", "gloo"), timeout_s=options.get("pg_timeout_s", 20.0))
        timeout_s = options.get("watchdog_s", {}).get(rank, 20.0)
        distributed = DistributedTrainer(make_trainer(device=device), check_every=1, timeout_s=timeout_s)
        result = SCENARIOS[scenario](distributed, out, options)
    except BaseException as error:  # the test reports whatever ended the rank
        result = {"uncaught": _error(error, started)}
    torch.save(result, os.path.join(out, f"rank{rank}.pt"))
    # A failed process group can abort the interpreter in its destructors; the result is
    # written, so leave without running them.
    os._exit(0)
