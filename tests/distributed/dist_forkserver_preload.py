"""Imported once by the forkserver that forks the test ranks (never by the test process).

It leaves the server single-threaded (one intra-op thread: a process whose OpenMP pool has
started cannot be forked safely) and pays the one-time costs every rank would otherwise pay
again: importing torch and the rank programs, and building the PRNG's normal lookup table, by
drawing one population of the test problem.
"""
import torch

torch.set_num_threads(1)

import dist_workers  # noqa: E402  (after the thread setting, which must come first)

for config in dist_workers.CONFIGS:
    dist_workers.make_trainer(config).population()
