"""Generation throughput of the population spread over W GPUs against one GPU.

Run under torchrun, one process per GPU::

    torchrun --standalone --nproc-per-node 2 benchmarks/bench_distributed.py

The workload defaults to the large bfloat16 stack of the trainer benchmarks: L=4 square ``nn.Linear``
layers of d=4096 (no bias) with tanh between, N=2048 members, each scoring its own T=64 tokens,
EGGROLL rank 16. A generation is the full ``DistributedTrainer.step``: this rank's perturbed
forward, the fitness exchange, and the update. Members are evaluated 256 per forward call
(``--members-per-call``), so every call has the same shape on any number of GPUs and the final
state is bit-identical across GPU counts by construction.

With ``--baseline`` (default), rank 0 first trains the same model with the plain single-process
``EggrollTrainer`` on its GPU, for the same number of generations from the same start (the
other ranks wait), so the ratio compares the same machine in the same run; its final state must
equal the distributed run's bit for bit (``bit_identical``). Rank 0 prints one JSON object
(``--json`` also writes it); ``--digest-dir`` writes each rank's final state digest for
``scripts/dist_digests.py``. Works on CPU with gloo for small smoke runs (``--dim 64 ...``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch
import torch.distributed as dist
from torch import nn

from eggroll_torch.distributed import DistributedTrainer, blocks_of, init_distributed, state_digest
from eggroll_torch.nn import EggrollTrainer

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--population", type=int, default=2048)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16")
    parser.add_argument("--warmup", type=int, default=2, help="untimed generations first")
    parser.add_argument("--generations", type=int, default=5, help="timed generations")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the single-process trainer on rank 0's device")
    parser.add_argument("--members-per-call", type=int, default=256,
                        help="members per forward call (0: all of a rank's members in one call)")
    parser.add_argument("--update", choices=("auto", "sharded", "replicated"), default="auto",
                        help="how the ranks split the update (DistributedTrainer's update=)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads per process (CPU runs)")
    parser.add_argument("--timeout-s", type=float, default=900.0)
    parser.add_argument("--json", help="write the result object to this file (rank 0)")
    parser.add_argument("--digest-dir", help="write rank<r>.json with the final state digest here")
    return parser.parse_args(argv)


def build_trainer(args, device) -> EggrollTrainer:
    """The same initial weights on every rank: one seed, one device kind."""
    torch.manual_seed(0)
    layers = []
    for index in range(args.layers):
        if index:
            layers.append(nn.Tanh())
        layers.append(nn.Linear(args.dim, args.dim, bias=False, device=device, dtype=DTYPES[args.dtype]))
    return EggrollTrainer(nn.Sequential(*layers), sigma=0.01, lr=1e-3, population_size=args.population,
                          rank=args.rank, noise_reuse=1, seed=0)


def member_tokens(args, device) -> torch.Tensor:
    """``(N, T, d)`` inputs, member ``i``'s row depending only on ``i``."""
    generator = torch.Generator(device=device).manual_seed(1)
    return torch.randn(args.population, args.tokens, args.dim, generator=generator, device=device,
                       dtype=DTYPES[args.dtype])


def score(population, tokens: torch.Tensor) -> torch.Tensor:
    """Raw fitness ``(n,)`` float32: minus the mean squared output of each member."""
    return -population(tokens).float().square().mean(dim=(1, 2))


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run_generation, count: int, device) -> float:
    """Seconds for ``count`` generations, the device drained before and after."""
    synchronize(device)
    started = time.perf_counter()
    for _ in range(count):
        run_generation()
    synchronize(device)
    return time.perf_counter() - started


def main(argv=None) -> dict | None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = init_distributed(timeout_s=args.timeout_s)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    tokens = member_tokens(args, device)
    result = {
        "workload": {k: getattr(args, k) for k in ("dim", "layers", "population", "tokens", "rank", "dtype")},
        "generations": args.generations, "warmup": args.warmup, "world_size": world_size,
        "threads_per_process": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "backend": dist.get_backend(), "torch": torch.__version__, "cuda": torch.version.cuda,
    }

    block = args.members_per_call or None
    baseline_digest = None
    if args.baseline and rank == 0:
        single = build_trainer(args, device)

        def single_generation():
            if block is None:
                single.step(lambda pop: score(pop, tokens))
            else:
                blocks = blocks_of(range(args.population), block)
                single.update(torch.cat([score(single.population(r), tokens[r.start:r.stop]) for r in blocks]))

        for _ in range(args.warmup):
            single_generation()
        seconds = timed(single_generation, args.generations, device)
        result["single_gen_per_s"] = args.generations / seconds
        baseline_digest = state_digest(single.state_dict())
        del single
    if args.baseline:
        dist.barrier()

    distributed = DistributedTrainer(build_trainer(args, device), check_every=0, timeout_s=args.timeout_s,
                                     members_per_call=block, update=args.update)
    result["update"] = distributed.update_mode
    result["members_per_call"] = block
    first = distributed.members.start
    local_tokens = tokens[first:distributed.members.stop].clone()
    tokens = None  # free the full batch: each rank keeps only its own members' tokens

    def generation():
        distributed.step(lambda pop, members: score(pop, local_tokens[members.start - first:members.stop - first]))

    for _ in range(args.warmup):
        generation()
    dist.barrier()
    seconds = timed(generation, args.generations, device)
    every_seconds = [None] * world_size
    dist.all_gather_object(every_seconds, seconds)
    slowest = max(every_seconds)
    result["distributed_gen_per_s"] = args.generations / slowest
    result["members_per_s"] = args.population * args.generations / slowest
    distributed.check_in_sync(when="at the end of the benchmark")
    digest = state_digest(distributed.state_dict())
    digests = [None] * world_size
    dist.all_gather_object(digests, digest)
    result["ranks_identical"] = len(set(digests)) == 1
    if args.digest_dir:
        os.makedirs(args.digest_dir, exist_ok=True)
        with open(os.path.join(args.digest_dir, f"rank{rank}.json"), "w") as handle:
            json.dump({"world_size": world_size, "rank": rank, "epoch": distributed.trainer.epoch,
                       "digest": digest}, handle)
    if baseline_digest is not None:
        result["speedup_vs_single"] = result["distributed_gen_per_s"] / result["single_gen_per_s"]
        result["bit_identical_to_single"] = baseline_digest == digest
    dist.destroy_process_group()
    if rank != 0:
        return None
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return result


if __name__ == "__main__":
    main()
