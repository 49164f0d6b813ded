"""Train a small CPU problem for a few generations and write the final state's digest.

Under torchrun (gloo) it runs ``DistributedTrainer``; with ``--single`` the plain
``EggrollTrainer`` in one process. Every run writes ``<out>/rank<r>.json`` (``single.json``)
holding the SHA-256 digest of the trainer state; ``scripts/dist_digests.py`` compares them.
The population (72 members = 36 pairs) splits unevenly over 8 ranks (5 or 4 pairs each).
"""
from __future__ import annotations

import argparse
import json
import os

import torch
import torch.distributed as dist
from torch import nn

from eggroll_torch.distributed import DistributedTrainer, init_distributed, state_digest
from eggroll_torch.nn import EggrollTrainer

POPULATION = 72
ROWS = 8


def build_trainer() -> EggrollTrainer:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.LayerNorm(32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(),
                          nn.Linear(32, 4))
    return EggrollTrainer(model, sigma=0.03, lr=0.01, population_size=POPULATION, rank=4, solver="adamw",
                          noise_reuse=1, seed=5)


def fitness(population, members: range) -> torch.Tensor:
    data = torch.randn(POPULATION, ROWS, 16, generator=torch.Generator().manual_seed(3))
    x = data[members.start:members.stop]
    target = torch.cos(x[..., :4])
    return -((population(x) - target) ** 2).mean(dim=(1, 2))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory for the digest file")
    parser.add_argument("--generations", type=int, default=6)
    parser.add_argument("--single", action="store_true", help="plain EggrollTrainer, no torch.distributed")
    parser.add_argument("--update", choices=("auto", "sharded", "replicated"), default="auto",
                        help="DistributedTrainer's update= (ignored with --single)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    if args.single:
        trainer = build_trainer()
        for _ in range(args.generations):
            trainer.step(lambda population: fitness(population, range(POPULATION)))
        record = {"world_size": 0, "rank": 0, "epoch": trainer.epoch, "digest": state_digest(trainer.state_dict())}
        name = "single.json"
    else:
        init_distributed("gloo", timeout_s=120)
        distributed = DistributedTrainer(build_trainer(), check_every=2, timeout_s=120, update=args.update)
        for _ in range(args.generations):
            distributed.step(fitness)
        record = {"world_size": distributed.world_size, "rank": distributed.rank, "members": [
            distributed.members.start, distributed.members.stop], "update": distributed.update_mode,
            "epoch": distributed.trainer.epoch,
            "digest": state_digest(distributed.state_dict())}
        name = f"rank{distributed.rank}.json"
        dist.destroy_process_group()
    with open(os.path.join(args.out, name), "w") as handle:
        json.dump(record, handle)


if __name__ == "__main__":
    main()
