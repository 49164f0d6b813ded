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
import torch.distributed as dist
from torch import nn

from eggroll_torch.distributed import DistributedTrainer, DivergenceError, RankFailureError, init_distributed
from eggroll_torch.nn import EXCLUDED, EggrollTrainer

POPULATION = 18
ROWS = 5


CONFIGS = {
    "eggroll": {},
    "open_es": {"noiser": "open_es"},
    "excluded_adamw": {"solver": "adamw", "es_classes": {"0.bias": EXCLUDED}},
}


def make_trainer(config: str = "eggroll") -> EggrollTrainer:
    """A 2-layer MLP with biases (MM_PARAM weights, PARAM biases) and Adam state, or one of the
    variations in ``CONFIGS``."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3))
    options = {"noiser": "eggroll", "solver": "adam", **CONFIGS[config]}
    return EggrollTrainer(model, sigma=0.05, lr=0.02, population_size=POPULATION, rank=2, noise_reuse=1,
                          seed=7, **options)


def member_inputs(members: range) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``(len(members), ROWS, 6)`` and targets ``(len(members), ROWS, 3)`` of the members."""
    data = torch.randn(POPULATION, ROWS, 6, generator=torch.Generator().manual_seed(11))
    x = data[members.start:members.stop]
    return x, torch.sin(x[..., :3]) + x[..., 3:]


def fitness(population, members: range) -> torch.Tensor:
    x, y = member_inputs(members)
    return -((population(x) - y) ** 2).mean(dim=(1, 2))


def reference_states(epochs: int, config: str = "eggroll") -> list[dict]:
    """Single-process ``state_dict()`` after every epoch ``0 .. epochs`` (index = epoch)."""
    trainer = make_trainer(config)
    states = [trainer.state_dict()]
    for _ in range(epochs):
        trainer.step(lambda population: fitness(population, range(POPULATION)))
        states.append(trainer.state_dict())
    return states


def _error(error: BaseException, started: float) -> dict:
    return {"type": type(error).__name__, "message": str(error), "after_s": time.monotonic() - started,
            "traceback": traceback.format_exc()}


def _conformance(distributed: DistributedTrainer, out: str, options: dict) -> dict:
    """Fresh run with a checkpoint at epoch 2, a resume from the single-process checkpoint, an
    OpenES run (member-by-member forward), a run with the other update mode, a failing
    fitness_fn and a tampered rank."""
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

    for config, update in (("open_es", "auto"), ("excluded_adamw", "sharded"), ("excluded_adamw", "replicated")):
        other = DistributedTrainer(make_trainer(config), check_every=1, timeout_s=20, update=update)
        for _ in range(2):
            other.step(fitness)
        result[config, update] = other.state_dict()

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
    """One rank: join the gloo group, run the scenario, write ``<out>/rank<r>.pt``, exit."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    started = time.monotonic()
    try:
        init_distributed("gloo", timeout_s=options.get("pg_timeout_s", 20.0))
        timeout_s = options.get("watchdog_s", {}).get(rank, 20.0)
        distributed = DistributedTrainer(make_trainer(), check_every=1, timeout_s=timeout_s)
        result = SCENARIOS[scenario](distributed, out, options)
    except BaseException as error:  # the test reports whatever ended the rank
        result = {"uncaught": _error(error, started)}
    torch.save(result, os.path.join(out, f"rank{rank}.pt"))
    # A failed process group can abort the interpreter in its destructors; the result is
    # written, so leave without running them.
    os._exit(0)
