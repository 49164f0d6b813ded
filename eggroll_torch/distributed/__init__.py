"""EGGROLL's population spread over the processes of a ``torch.distributed`` run.

Only the N raw fitnesses cross the network: every rank can regenerate any member's noise from
the keys, evaluates its own contiguous range of thread ids (whole antithetic pairs), receives
everyone's scores, and applies the single-process update itself, so parameters and optimizer
state are bit-identical on every rank and equal to a single-process run, for any world size.

Launch one process per GPU with ``torchrun`` (NCCL) or several CPU processes (gloo)::

    # train.py -- torchrun --nproc-per-node 2 train.py
    import torch
    from torch import nn
    from eggroll_torch.nn import EggrollTrainer
    from eggroll_torch.distributed import DistributedTrainer, init_distributed

    device = init_distributed(timeout_s=300)         # NCCL on cuda:LOCAL_RANK, else gloo on CPU
    torch.manual_seed(0)                             # the same initial weights on every rank
    model = nn.Sequential(nn.Linear(8, 64), nn.Tanh(), nn.Linear(64, 1)).to(device)
    trainer = EggrollTrainer(model, sigma=0.05, lr=0.01, population_size=1024, rank=4, seed=0)
    distributed = DistributedTrainer(trainer, timeout_s=300)
    data = torch.randn(1024, 16, 8, device=device)   # one batch per thread id

    def fitness(pop, members):                       # members: this rank's thread ids (a range)
        x = data[members.start:members.stop]
        return -(pop(x) ** 2).mean(dim=(1, 2))

    for epoch in range(100):
        metrics = distributed.step(fitness)          # the same metrics on every rank
        if epoch % 10 == 9:
            distributed.save_checkpoint("es.pt")     # resumable on any number of ranks
    torch.distributed.destroy_process_group()

Resume with ``distributed.load_checkpoint("es.pt")`` (or ``trainer.load_state_dict(torch.load
("es.pt"))`` in one process).
"""
from .checksum import check_in_sync, state_checksum, state_digest
from .errors import DivergenceError, RankFailureError
from .launch import init_distributed
from .partition import blocks_of, member_ranges
from .trainer import DistributedTrainer

__all__ = [
    "DistributedTrainer",
    "DivergenceError",
    "RankFailureError",
    "blocks_of",
    "check_in_sync",
    "init_distributed",
    "member_ranges",
    "state_checksum",
    "state_digest",
]
