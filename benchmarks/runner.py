"""Runs the plan of one device: the trainer workloads, upstream's MLP example, the sweep, and the
PRNG benchmark.

Each measurement is isolated: an out-of-memory or any other error is recorded in the results
(and printed) and the run moves on. The results JSON is rewritten after every measurement, so an
interrupted run still leaves its partial results. A time budget skips what would not fit.
"""
from __future__ import annotations

import contextlib
import datetime
import gc
import importlib.util
import inspect
import json
import os
import time
import traceback

import torch

from . import ratios as ratio_defs
from .environment import describe
from .measure import PeakMemory, allocator_peak_bytes, cuda_sync, jax_sync, no_sync, time_call, time_in_turns
from .workloads import PARTS, plan

SCHEMA = 1


def _is_oom(error: BaseException) -> bool:
    text = f"{type(error).__name__}: {error}"
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in text.lower() \
        or "RESOURCE_EXHAUSTED" in text


def _free(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def _build_and_call(build, calls: int) -> None:
    fn = build()
    for _ in range(calls):
        fn()


class Runner:
    """Holds the results being built, the clock and the per-device settings."""

    def __init__(self, device: str, *, quick: bool, out: str, budget_s: float, f32_matmul: str,
                 cuda_graphs: bool = False):
        self.device = device
        self.quick = quick
        self.out = out
        self.budget_s = budget_s
        self.f32_matmul = f32_matmul
        self.cuda_graphs = cuda_graphs
        self.start = time.perf_counter()
        self.target_s = 0.2 if quick else (0.5 if device == "cuda" else 1.5)
        self.results = {
            "schema": SCHEMA,
            "device": device,
            "quick": quick,
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "environment": describe(device, f32_matmul),
            "api": [],
            "example": None,
            "sweep": None,
            "random": None,
            "rwkv7": None,
        }
        self._jax_device = None

    # -- bookkeeping ---------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def save(self) -> None:
        self.results["elapsed_s"] = round(self.elapsed(), 1)
        os.makedirs(os.path.dirname(os.path.abspath(self.out)), exist_ok=True)
        with open(self.out + ".tmp", "w") as f:
            json.dump(self.results, f, indent=1)
        os.replace(self.out + ".tmp", self.out)

    def _log(self, workload: str, variant: str, record: dict) -> None:
        if "error" in record:
            detail = record["error"]
        else:
            peak = record.get("peak_bytes")
            peak_text = "" if peak is None else f", peak {peak / 2**20:,.0f} MiB"
            detail = (f"{record['time_s'] * 1e3:10.3f} ms  "
                      f"({record['reps']} reps, built in {record['build_s']:.1f} s{peak_text})")
        print(f"[{self.device} {self.elapsed():6.0f}s] {workload:32s} {variant:22s} {detail}", flush=True)

    def jax_problem(self) -> str | None:
        """Why JAX cannot be measured on this run's device, or None."""
        backend = self.results["environment"].get("jax_backend", "")
        if backend.startswith("unavailable"):
            return f"jax is {backend}"
        if self.device == "cuda" and backend != "gpu":
            return f"jax has no GPU backend here (default backend: {backend}); install jax[cuda]"
        return None

    def jax_device(self):
        if self._jax_device is None:
            import jax

            self._jax_device = jax.devices()[0]
        return self._jax_device

    # -- one measurement -----------------------------------------------------------------------
    def measure(self, workload: str, variant: str, build, *, into: dict, framework: str = "torch",
                min_reps: int = 3, target_s: float | None = None, min_left_s: float = 0.0) -> None:
        """Build a callable with ``build()``, time it and store the record as ``into[variant]``
        (then save the results); never raises."""
        if self.left() < min_left_s:
            self._record(workload, variant, into, {"error": f"skipped: {self.left():.0f} s of the time budget left"})
            return
        if framework == "jax" and self.jax_problem():
            self._record(workload, variant, into, {"error": f"skipped: {self.jax_problem()}"})
            return
        if framework == "jax":
            sync = jax_sync
        else:
            sync = cuda_sync if self.device == "cuda" else no_sync
        fn = None
        # Torch on the CPU: what CUDA's allocator statistics cover (a build and its calls),
        # counted by torch's CPU allocator in a separate, untimed pass; no sampling while timing.
        cpu_torch = self.device == "cpu" and framework == "torch"
        try:
            with contextlib.nullcontext() if cpu_torch else \
                    PeakMemory(self.device, self.jax_device() if framework == "jax" else None) as memory:
                t0 = time.perf_counter()
                fn = build()
                build_s = time.perf_counter() - t0
                timing = time_call(fn, sync, target_s=self.target_s if target_s is None else target_s,
                                   min_reps=min_reps)
            peak = allocator_peak_bytes(lambda: _build_and_call(build, calls=2)) if cpu_torch else memory.peak_bytes
            record = {**timing, "build_s": build_s, "peak_bytes": peak}
            if getattr(fn, "graphed", False):
                record["cuda_graph"] = True
            if getattr(fn, "graph_error", None):
                record["cuda_graph_error"] = fn.graph_error
        except Exception as error:  # noqa: BLE001 - every failure is a result to report
            kind = "out of memory" if _is_oom(error) else "error"
            record = {"error": f"{kind}: {type(error).__name__}: {str(error)[:400]}"}
            if kind == "error":
                record["traceback"] = traceback.format_exc(limit=6)[-2000:]
        finally:
            del fn
            _free(self.device)
        self._record(workload, variant, into, record)

    def _record(self, workload: str, variant: str, into: dict, record: dict) -> None:
        into[variant] = record
        self._log(workload, variant, record)
        self.save()

    # -- workloads -----------------------------------------------------------------------------
    def build_side(self, entry: dict, build):
        """``build()``, or None with the reason recorded in ``entry`` (an out-of-memory included)."""
        try:
            return build()
        except Exception as error:  # noqa: BLE001 - a model that cannot be built is a result
            entry["error"] = f"{'out of memory' if _is_oom(error) else 'error'}: {error!r}"[:500]
            print(f"[{self.device}] {entry['name']}: could not build the model: {entry['error']}", flush=True)
            _free(self.device)
            return None

    def run_mlp_example(self, wl) -> dict:
        from .mlp_example import MLPExample

        entry = {"name": wl.name, "config": wl.config(), "measurements": {}}
        self.results["example"] = entry
        m = entry["measurements"]
        example = MLPExample(wl, self.device)
        # A few microseconds of work per op: one thread, because OpenMP's fork and join for a
        # second one costs more than the op itself.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        entry["torch_threads"] = 1
        try:
            self.measure(wl.name, "inference", example.torch_inference, into=m)
            self.measure(wl.name, "generation", example.torch_generation, into=m)
        finally:
            torch.set_num_threads(threads)
        self.measure(wl.name, "jax_inference", example.jax_inference, framework="jax", into=m)
        self.measure(wl.name, "jax_generation", example.jax_generation, framework="jax", into=m)
        # One torch thread, as above; JAX's threads are its own.
        entry["in_turns"] = self._in_turns(wl.name, {"generation": example.torch_generation,
                                                     "jax_generation": example.jax_generation},
                                           rounds=5, batch=20, torch_threads=1, jax=("jax_generation",))
        entry["ratios"] = ratio_defs.mlp_ratios(m, entry["in_turns"])
        return entry

    def _in_turns(self, workload: str, builders: dict, *, rounds: int, batch: int, torch_threads: int | None = None,
                  jax: tuple = ()) -> dict:
        """``builders[name]()`` built, then their callables timed in turns
        (``measure.time_in_turns``; the names in ``jax`` are JAX calls): on a shared CPU a load
        that comes and goes then slows them alike, and their ratios hold. ``{name: record}``, or
        ``{"error": ...}``."""
        threads = torch.get_num_threads()
        try:
            fns = {}
            for name, build in builders.items():
                fn = build()
                sync = jax_sync if name in jax else (cuda_sync if self.device == "cuda" else no_sync)
                fns[name] = lambda fn=fn, sync=sync: sync(fn())
            if torch_threads is not None:
                torch.set_num_threads(torch_threads)
            timed = time_in_turns(fns, rounds=rounds, batch=batch, target_s=2 * self.target_s)
        except Exception as error:  # noqa: BLE001 - a failure is a result to report
            return {"error": f"error: {type(error).__name__}: {str(error)[:400]}"}
        finally:
            torch.set_num_threads(threads)
        for name, record in timed.items():
            print(f"[{self.device} {self.elapsed():6.0f}s] {workload:32s} {name + ' in turns':22s} "
                  f"{record['time_s'] * 1e3:10.3f} ms  ({record['rounds']} rounds of {batch} calls)", flush=True)
        return timed

    def run_api(self, wl) -> dict:
        """A real network through ``EggrollTrainer``: its inference, a generation (graphed on
        CUDA, and eager beside it), a generation with ``keep_noise=False``, and the same
        architecture in jax_reference."""
        from eggroll_torch.nn import default_es_classes

        from .jax_trainer import JaxTrainerSide, numpy_inputs
        from .torch_trainer import TorchTrainerSide

        entry = {"name": wl.name, "config": wl.config(), "measurements": {}}
        self.results["api"].append(entry)
        m = entry["measurements"]
        side = self.build_side(entry, lambda: TorchTrainerSide(wl, self.device, self.cuda_graphs))
        if side is None:
            return entry
        # Seconds per call on the CPU: more calls, so that one slow call cannot move the median.
        reps = 3 if self.device == "cuda" or self.quick else 7
        self.measure(wl.name, "inference", side.inference, into=m, min_reps=reps)
        self.measure(wl.name, "generation", side.generation, into=m, min_reps=reps)
        if self.device == "cuda" and self.cuda_graphs:
            self.measure(wl.name, "generation_eager", lambda: side.generation(graphed=False), into=m)
        self.measure(wl.name, "generation_redrawn", lambda: side.generation(keep_noise=False), into=m,
                     min_reps=reps)
        initial, classes = side.initial, default_es_classes(side.model)
        inputs, targets = numpy_inputs(side)

        def jax_generation():
            return JaxTrainerSide(wl, initial, classes, inputs, targets, self.f32_matmul).generation()

        if self.device == "cpu":
            # Everything fits beside everything on the CPU: the ratios come from calls in turns.
            entry["in_turns"] = self._in_turns(wl.name, {
                "inference": side.inference, "generation": side.generation,
                "generation_redrawn": lambda: side.generation(keep_noise=False), "jax_generation": jax_generation,
            }, rounds=reps, batch=1, jax=("jax_generation",))
        side = None  # drop the torch side (its model and buffers) before the JAX run
        _free(self.device)
        self.measure(wl.name, "jax_generation", jax_generation, framework="jax", into=m)
        entry["ratios"] = ratio_defs.trainer_ratios(wl, m, entry.get("in_turns"))
        self.save()
        return entry

    def run_sweep(self, sweep, reserve_s: float) -> dict:
        """The sweep's workload at each population size: inference, a generation through the
        trainer and jax_reference's generation."""
        from eggroll_torch.nn import default_es_classes

        from .jax_trainer import JaxTrainerSide, numpy_inputs
        from .torch_trainer import TorchTrainerSide

        result = {"config": sweep.base.config(), "points": []}
        self.results["sweep"] = result
        for wl in sweep.points():
            point = {"members": wl.members, "tokens": wl.tokens}
            result["points"].append(point)
            if self.left() < reserve_s + 20:
                point["error"] = "skipped: time budget"
                print(f"[{self.device}] sweep N={wl.members}: skipped (time budget)", flush=True)
                continue
            try:
                side = TorchTrainerSide(wl, self.device, self.cuda_graphs)
                self.measure(wl.name, "inference", side.inference, into=point)
                self.measure(wl.name, "generation", side.generation, into=point)
                initial, classes = side.initial, default_es_classes(side.model)
                inputs, targets = numpy_inputs(side)
                del side
                _free(self.device)
                self.measure(
                    wl.name, "jax_generation",
                    lambda: JaxTrainerSide(wl, initial, classes, inputs, targets, self.f32_matmul).generation(),
                    framework="jax", min_left_s=10.0, into=point)
            except Exception as error:  # noqa: BLE001
                point["error"] = f"{'out of memory' if _is_oom(error) else 'error'}: {error!r}"[:500]
                _free(self.device)
            self.save()
        return result

    def run_random_benchmark(self) -> None:
        """``benchmarks.bench_random.main`` (the PRNG on its own), when present and time allows;
        on the CPU with an eighth of its default population, to stay within ``make bench``'s budget."""
        if self.quick or importlib.util.find_spec("benchmarks.bench_random") is None:
            return
        if self.left() < 60:
            self.results["random"] = {"error": "skipped: time budget"}
            return
        try:
            from . import bench_random

            accepts_population = "population" in inspect.signature(bench_random.main).parameters
            if self.device == "cpu" and accepts_population:
                outcome = bench_random.main(self.device, population=512)
            else:
                outcome = bench_random.main(self.device)
            json.dumps(outcome)
            self.results["random"] = outcome
        except Exception as error:  # noqa: BLE001
            self.results["random"] = {"error": f"{type(error).__name__}: {str(error)[:400]}"}
            print(f"[{self.device}] bench_random failed: {error!r}", flush=True)

    def build_normal_tables(self, workloads) -> None:
        """Build ``eggroll_torch.random``'s normal tables up front, outside every measurement."""
        from eggroll_torch.random.normal_tables import normal_table

        built = {}
        for dtype in sorted({wl.dtype for wl in workloads}):
            t0 = time.perf_counter()
            normal_table(getattr(torch, dtype), self.device)
            built[dtype] = round(time.perf_counter() - t0, 2)
            print(f"[{self.device} {self.elapsed():6.0f}s] normal table {dtype}: built in {built[dtype]} s", flush=True)
        self.results["normal_table_build_s"] = built

    def run(self, parts=PARTS) -> dict:
        """Measure the ``parts`` of the plan (see :data:`PARTS`), in that order of priority."""
        api, example, sweep = plan(self.device, self.quick)
        self.build_normal_tables([*api, sweep.base, *([example] if example else [])])
        from .selfcheck import run as selfcheck

        self.results["selfcheck"] = selfcheck(self.device)
        print(f"[{self.device} {self.elapsed():6.0f}s] self-check: {json.dumps(self.results['selfcheck'])}", flush=True)
        if "api" in parts:
            for wl in api:
                if self.left() < 30:
                    self.results["api"].append(
                        {"name": wl.name, "config": wl.config(), "error": "skipped: time budget"})
                else:
                    self.run_api(wl)
        if "example" in parts and example is not None:
            if self.left() < 30:
                self.results["example"] = {"name": example.name, "config": example.config(),
                                           "error": "skipped: time budget"}
            else:
                self.run_mlp_example(example)
        if "sweep" in parts:
            # Leave time for the PRNG benchmark, which comes next.
            self.run_sweep(sweep, reserve_s=60.0 if "random" in parts and not self.quick else 0.0)
        if "random" in parts:
            self.run_random_benchmark()
        if "rwkv7" in parts:
            from .rwkv7 import run as run_rwkv7

            self.results["rwkv7"] = run_rwkv7(self)
        self.save()
        return self.results
