"""Checks spread over worker processes (``conformance run --jobs N``).

Most of a run is the jax_reference backend compiling XLA programs on the CPU, one check at a
time; on a machine with several cores, worker processes run several checks at once. Each
worker resolves the same backends and reference as the parent (from the same ``--backend``
list and vectors directory), so a result does not depend on which process computed it; the
results come back in the sequential run's order (backend by backend, checks in order).

Workers are *spawned*, never forked: the parent has torch and JAX loaded, and neither supports
being forked with its thread pools running.
"""
from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable

from . import adapters
from .checks import REGISTRY
from .golden import VectorStore
from .reference import reference_for
from .results import CheckResult
from .runner import run_check

# Per worker process: its adapters (in the order of the backend list) and its reference.
_WORKER: dict = {}


def _start_worker(backends: list[str] | None, vectors_dir: str | None) -> None:
    resolved = adapters.resolve_all(backends)
    _WORKER["adapters"] = resolved.adapters
    _WORKER["reference"] = reference_for(VectorStore(vectors_dir), resolved.adapters)


def _run_task(adapter_index: int, check_id: str, profile: str) -> CheckResult:
    return run_check(REGISTRY[check_id], _WORKER["adapters"][adapter_index], _WORKER["reference"], profile)


def previous_durations(report: str | Path) -> dict[tuple[str, str], float]:
    """``{(backend, check id): seconds}`` from an earlier run's ``conformance.json`` (empty when
    there is none or it cannot be read): the order in which tasks are handed out."""
    try:
        results = json.loads(Path(report).read_text())["results"]
        return {(r["backend"], r["check_id"]): float(r["duration_s"]) for r in results}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def longest_first(keys: list[tuple[str, str]], durations: dict[tuple[str, str], float]) -> list[int]:
    """Indices of ``keys`` ``(backend, check id)`` by decreasing earlier duration, keys never timed
    first (in their given order): longest-processing-time-first keeps one long check from
    starting when the others are done."""
    return sorted(range(len(keys)), key=lambda i: -durations.get(keys[i], float("inf")))


def run(backends: list[str] | None, adapter_names: list[str], checks: list, vectors_dir: str | None, profile: str,
        jobs: int, durations: dict[tuple[str, str], float] | None = None,
        progress: Callable[[int, int, CheckResult], None] | None = None) -> list[CheckResult]:
    """Every check on every backend, on ``jobs`` spawned workers.

    ``backends``: the ``--backend`` list the parent resolved (``None``: every built-in that can
    run), whose adapters are named ``adapter_names`` in order. The longest tasks of an earlier
    run (``durations``) are handed out first (:func:`longest_first`). ``progress(done, total,
    result)`` as each finishes. Returns the results in :func:`conformance.runner.run`'s order.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    tasks = [(i, check.id) for i in range(len(adapter_names)) for check in checks]
    order = longest_first([(adapter_names[i], check_id) for i, check_id in tasks], durations or {})
    results: list[CheckResult | None] = [None] * len(tasks)
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)) or 1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_start_worker, initargs=(backends, vectors_dir)) as pool:
        futures = {pool.submit(_run_task, *tasks[t], profile): t for t in order}
        for done, future in enumerate(as_completed(futures), 1):
            results[futures[future]] = future.result()
            if progress is not None:
                progress(done, len(tasks), results[futures[future]])
    return results
