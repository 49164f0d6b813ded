"""Start gloo process groups of a few CPU ranks from a test, bounded by a deadline.

Ranks are forked from a forkserver that imported torch and the rank programs and built the
PRNG tables once (:mod:`dist_forkserver_preload`), so a launch costs milliseconds instead of
one torch import and table build per rank.
Each rank runs ``dist_workers.run_rank``, which writes its result to ``<out>/rank<r>.pt``.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import socket
import time
from pathlib import Path

import torch

import dist_workers

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["dist_forkserver_preload"])
_HERE = Path(__file__).resolve().parent
_REPOSITORY = _HERE.parent.parent


def _ensure_forkserver() -> None:
    """Start the forkserver with this directory and the repository importable: before Python
    3.12 it does not inherit ``sys.path``, only the environment, and skips preload modules it
    cannot import without a word."""
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(_HERE), str(_REPOSITORY)] + ([previous] if previous else []))
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        if previous is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = previous


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(scenario: str, world_size: int, out: Path, *, deadline_s: float, **options) -> dict:
    """Run ``dist_workers.SCENARIOS[scenario]`` on ``world_size`` ranks (gloo unless
    ``backend="nccl"`` is among ``options``).

    Returns ``{"exitcodes": [...], "results": [rank result dict (tensors on the CPU) or None,
    ...]}``. Ranks still alive after ``deadline_s`` are killed and reported with exit code ``None``.
    """
    _ensure_forkserver()
    port = free_port()
    processes = [
        _CONTEXT.Process(
            target=dist_workers.run_rank,
            args=(scenario, rank, world_size, port, str(out), options),
            name=f"{scenario}-rank{rank}",
        )
        for rank in range(world_size)
    ]
    for process in processes:
        process.start()
    stop_at = time.monotonic() + deadline_s
    for process in processes:
        process.join(max(0.0, stop_at - time.monotonic()))
    exitcodes = []
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()
            exitcodes.append(None)
        else:
            exitcodes.append(process.exitcode)
    results = []
    for rank in range(world_size):
        path = out / f"rank{rank}.pt"
        results.append(torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None)
    return {"exitcodes": exitcodes, "results": results}


def results_of(run: dict) -> list[dict]:
    """The ranks' results of a launch in which every rank must have ended normally."""
    assert all(code == 0 for code in run["exitcodes"]), f"ranks ended with {run['exitcodes']}"
    for result in run["results"]:
        assert "uncaught" not in result, result.get("uncaught", {}).get("traceback")
    return run["results"]
