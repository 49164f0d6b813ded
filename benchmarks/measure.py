"""Timing and peak-memory measurement that works the same for torch and JAX, CPU and CUDA."""
from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable, Mapping

import torch


def cuda_sync(_result=None) -> None:
    """Wait for all queued CUDA work (the argument is ignored)."""
    torch.cuda.synchronize()


def no_sync(_result=None) -> None:
    """CPU torch returns when the work is done: nothing to wait for."""


def jax_sync(result) -> None:
    """Wait until a JAX result (any pytree) has been computed."""
    import jax

    jax.block_until_ready(result)


def time_call(fn: Callable[[], object], sync: Callable[[object], None], *, target_s: float,
              min_reps: int = 3, max_reps: int = 2000, warmup: int = 1) -> dict:
    """Median seconds per call of ``fn`` after ``warmup`` calls.

    Each call is timed on its own, ``sync`` applied to its result; calls repeat until
    ``target_s`` seconds have passed (at least ``min_reps``, at most ``max_reps``). ``cpu_s`` is
    the median CPU time of the process per call (all threads), which a busy machine distorts
    less than wall time.
    """
    for _ in range(warmup):
        sync(fn())
    times, cpu_times = [], []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < target_s and len(times) < max_reps):
        t0, c0 = time.perf_counter(), time.process_time()
        sync(fn())
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    return {"time_s": statistics.median(times), "min_s": min(times), "cpu_s": statistics.median(cpu_times),
            "reps": len(times)}


def time_in_turns(fns: Mapping[str, Callable[[], object]], *, rounds: int, batch: int = 1, warmup: int = 2,
                  target_s: float = 0.0) -> dict[str, dict]:
    """Median seconds per call of each ``fns[name]()`` (which must return once its work is done),
    the functions taking turns.

    After ``warmup`` untimed calls each, every round calls each function ``batch`` times in a row,
    in the order given; rounds repeat until ``target_s`` seconds have passed, at least ``rounds``
    of them. A drift in the machine's load or a GPU's clock then weighs on every ratio alike
    instead of on whichever function was timed while it lasted. Returns ``{name: {"time_s",
    "cpu_s", "rounds"}}``: medians over the rounds of each batch's wall and process CPU time per
    call.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    cpu_times = {name: [] for name in fns}
    start = time.perf_counter()
    while len(times[next(iter(fns))]) < rounds or time.perf_counter() - start < target_s:
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(batch):
                fn()
            times[name].append((time.perf_counter() - t0) / batch)
            cpu_times[name].append((time.process_time() - c0) / batch)
    return {name: {"time_s": statistics.median(times[name]), "cpu_s": statistics.median(cpu_times[name]),
                   "rounds": len(times[name])} for name in fns}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def allocator_peak_bytes(run: Callable[[], object]) -> int:
    """The most bytes that blocks allocated by ``run()`` held at once while it ran, as torch's CPU
    allocator counts them (``torch.profiler``'s allocation events): on the CPU what
    ``torch.cuda.max_memory_allocated`` counts on CUDA for a ``run`` that builds what it uses
    (tensors, not the process's pages). Blocks allocated before ``run`` are not counted, nor are
    their frees."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()

    def events(nodes):
        for node in nodes:
            yield node
            yield from events(node.children)

    allocations = sorted((event.start_time_ns, event.extra_fields.ptr, event.extra_fields.alloc_size)
                         for event in events(prof.profiler.kineto_results.experimental_event_tree())
                         if event.tag == _EventType.Allocation)
    live, held, peak = {}, 0, 0
    for _, address, size in allocations:
        if size > 0:
            live[address] = size
            held += size
            peak = max(peak, held)
        else:
            held -= live.pop(address, 0)
    return peak


class PeakMemory:
    """Peak memory while the ``with`` block runs, above what was in use when it started.

    CUDA: torch's allocator statistics (``max_memory_allocated``). CPU: the process's resident
    set sampled every 5 ms (approximate; includes every framework's allocations): the runner
    keeps it for JAX and measures torch with :func:`allocator_peak_bytes` instead.
    ``jax_device``: a JAX device whose allocator reports ``peak_bytes_in_use``; its peak is
    process-wide and cannot be reset, so it is reported as is.
    """

    def __init__(self, device: str, jax_device=None):
        self.device = device
        self.jax_device = jax_device if device == "cuda" else None
        self.peak_bytes: int | None = None
        self._stop = threading.Event()

    def _sample(self):
        while not self._stop.is_set():
            self._peak = max(self._peak, _rss_bytes())
            time.sleep(0.005)

    def __enter__(self):
        if self.jax_device is not None:
            return self
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        else:
            self._base = self._peak = _rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.jax_device is not None:
            stats = self.jax_device.memory_stats() or {}
            self.peak_bytes = stats.get("peak_bytes_in_use")
            return False
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated() - self._base
        else:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = self._peak - self._base
        return False
