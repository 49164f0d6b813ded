"""``reports/PERFORMANCE.md`` and ``reports/throughput_<device>.png`` from results JSONs."""
from __future__ import annotations

import glob
import json
import os

from .ratios import timed_records


def _fmt(value, digits=2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _ms(record) -> str:
    if not record:
        return "–"
    if "error" in record:
        if record["error"].startswith("out of memory"):
            return "OOM"
        return "skipped" if "skipped" in record["error"] else "error"
    return f"{record['time_s'] * 1e3:.3g}"


def _load(paths) -> list[tuple[str, str, dict]]:
    """``(device, path, results)`` of each results file, in the order given."""
    loaded = []
    for path in paths:
        with open(path) as f:
            results = json.load(f)
        loaded.append((results["device"], path, results))
    return loaded


def _default_paths(reports_dir: str) -> list[str]:
    """``bench_cpu.json`` and ``bench_cuda.json``, then further runs of a device on other hardware
    (``bench_cuda_h100.json``: a device results file with trainer workloads), those that exist."""
    paths = [p for p in (os.path.join(reports_dir, "bench_cpu.json"), os.path.join(reports_dir, "bench_cuda.json"))
             if os.path.exists(p)]
    for device in ("cpu", "cuda"):
        for path, results in _results_files(reports_dir, f"bench_{device}_*.json"):
            if results.get("device") == device and results.get("api"):
                paths.append(path)
    return paths


def _plot(results: dict, path: str) -> bool:
    sweep = results.get("sweep") or {}
    points = sorted((p for p in sweep.get("points", []) if "error" not in p), key=lambda p: p["members"])
    if not points:
        return False
    try:
        import matplotlib
    except ImportError:
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label, style in (("inference", "torch inference (no noise)", "k--"),
                              ("generation", "torch EGGROLL generation", "C0o-"),
                              ("jax_generation", "jax_reference generation (jit)", "C1s-")):
        xs = [p["members"] for p in points if "time_s" in p.get(key, {})]
        ys = [p["members"] * p["tokens"] / p[key]["time_s"] for p in points if "time_s" in p.get(key, {})]
        if xs:
            ax.plot(xs, ys, style, label=label)
    cfg = sweep["config"]
    where = results["environment"].get("gpu") or results["environment"].get("cpu")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("population size N")
    ax.set_ylabel("member-tokens per second")
    ax.set_title(f"d={cfg['width']}, L={cfg['layers']}, T={cfg['tokens']}, rank {cfg['rank']}, {cfg['dtype']}\n{where}",
                 fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _device_section(device: str, source: str, results: dict, plot_name: str | None) -> list[str]:
    env = results["environment"]
    v = env["versions"]
    where = env.get("gpu") or env.get("cpu")
    lines = [f"## {device.upper()}: {where}", ""]
    lines.append(
        f"torch {v.get('torch')}, jax {v.get('jax')} (backend {env.get('jax_backend')}), jaxlib {v.get('jaxlib')}, "
        f"triton {v.get('triton') or 'not installed'}, {env.get('cpu_count')} CPUs ({env.get('torch_threads')} torch "
        f"threads), float32 matmul '{env.get('float32_matmul')}', commit {env.get('commit')}, run {results['started']}"
        f"{' (quick)' if results.get('quick') else ''}, {results.get('elapsed_s')} s. Source: `{source}`."
    )
    check = results.get("selfcheck") or {}
    if check:
        cells = []
        for name, value in check.items():
            if "error" in value:
                cells.append(f"{name}: error ({value['error'][:80]})")
            elif "bit_identical" in value:
                bits = "bit-identical" if value["bit_identical"] else "BITS DIFFER"
                cells.append(f"{name} ({value['kernel']}): {bits}")
            else:
                cells.append(f"{name}: {'agrees' if value['ok'] else 'DISAGREES'} (max {value['max_ulp']:.3g} ulp)")
        lines += ["", "Self-check on this device (the timed code against the parity path): " + "; ".join(cells) + "."]
    lines += _api_lines(device, results.get("api") or [])
    lines += _example_lines(results.get("example"))
    sweep = results.get("sweep")
    if sweep:
        cfg = sweep["config"]
        lines += ["", f"Population sweep through `EggrollTrainer` ({cfg['layers']} square layers, d={cfg['width']}, "
                  f"T={cfg['tokens']}, rank {cfg['rank']}, {cfg['dtype']}), member-tokens per second:", "",
                  "| N | torch inference | torch EGGROLL | jax_reference | gen / inf | torch / JAX |",
                  "|---|---|---|---|---|---|"]
        for p in sorted(sweep["points"], key=lambda p: p["members"]):
            def rate(key, p=p):
                rec = p.get(key) or {}
                return p["members"] * p["tokens"] / rec["time_s"] if "time_s" in rec else None
            inf, gen, jx = rate("inference"), rate("generation"), rate("jax_generation")
            lines.append(f"| {p['members']} | {_fmt(inf, 0) if inf is None else format(inf, '.3g')} | "
                         f"{'–' if gen is None else format(gen, '.3g')} | {'–' if jx is None else format(jx, '.3g')} | "
                         f"{_fmt(gen / inf if gen and inf else None)} | {_fmt(gen / jx if gen and jx else None)} |")
        if plot_name:
            lines += ["", f"![throughput against population size on {device}]({plot_name})"]
    if results.get("random"):
        lines += ["", *_random_lines(results["random"])]
    return lines


EXAMPLE_GOAL = 1.0
_API_GOALS = {"cuda": {"generation_over_bound": 0.85, "torch_over_jax": 1.5, "peak_over_inference": (None, 1.5)},
              "cpu": {"generation_over_bound": 0.8}}


def _api_goals(device: str, name: str, ratios: dict) -> str:
    marks = []
    for metric, goal in _API_GOALS.get(device, {}).items():
        value = ratios.get(metric)
        if value is None or (device == "cpu" and not name.startswith("blocks")):
            continue
        if isinstance(goal, tuple):
            mark = f"peak <= {goal[1]}x: {'yes' if value <= goal[1] else 'no'}"
            redrawn = ratios.get("peak_redrawn_over_inference")
            if redrawn is not None:
                mark += f" (keep_noise=False: {'yes' if redrawn <= goal[1] else 'no'})"
            marks.append(mark)
        else:
            marks.append(f"{metric.replace('_', ' ')} >= {goal}: {'yes' if value >= goal else 'no'}")
    return "; ".join(marks) or "–"


def _api_lines(device: str, entries: list) -> list[str]:
    """The public-API table: real networks through EggrollTrainer."""
    if not entries:
        return []
    in_turns = any(w.get("in_turns") and "error" not in w["in_turns"] for w in entries)
    lines = ["", "Through the public API (`EggrollTrainer`), milliseconds per call (median) and ratios"
             + (" (inference, both generations and JAX's timed in turns, one call of each per round)" if in_turns
                else "") + ":", "",
             "| workload | inference | generation | gen. (eager) | JAX generation | gen / inf | bound "
             "| gen / inf / bound | torch / JAX | peak gen / inf | gen. (redrawn) | redrawn: gen / inf / bound "
             "| redrawn: peak / inf | goals met |", "|---" * 14 + "|"]
    for w in entries:
        r = w.get("ratios", {})
        # The times the ratios were computed from: those timed in turns, where there are some.
        m = timed_records(w.get("measurements", {}), w.get("in_turns"))
        lines.append(f"| {w['name']} | {_ms(m.get('inference'))} | {_ms(m.get('generation'))} | "
                     f"{_ms(m.get('generation_eager'))} | {_ms(m.get('jax_generation'))} | "
                     f"{_fmt(r.get('generation_over_inference'))} | {_fmt(r.get('update_bound'))} | "
                     f"{_fmt(r.get('generation_over_bound'))} | {_fmt(r.get('torch_over_jax'))} | "
                     f"{_fmt(r.get('peak_over_inference'))} | {_ms(m.get('generation_redrawn'))} | "
                     f"{_fmt(r.get('generation_redrawn_over_bound'))} | {_fmt(r.get('peak_redrawn_over_inference'))} | "
                     f"{_api_goals(device, w['name'], r)} |")
    failed = [(w["name"], w["in_turns"]["error"]) for w in entries if "error" in (w.get("in_turns") or {})]
    lines += [f"- {name}: not timed in turns: {error.splitlines()[0][:200]}" for name, error in failed]
    return lines + _not_measured(entries)


def _not_measured(entries: list) -> list[str]:
    errors = [(w["name"], k, rec["error"]) for w in entries
              for k, rec in w.get("measurements", {}).items() if isinstance(rec, dict) and "error" in rec]
    errors += [(w["name"], "(model)", w["error"]) for w in entries if "error" in w]
    if not errors:
        return []
    return ["", "Not measured:", ""] + [f"- {name} / {k}: {e.splitlines()[0][:200]}" for name, k, e in errors]


def _example_lines(entry: dict | None) -> list[str]:
    """Upstream's MLP example: ``EggrollTrainer.step`` against upstream's jitted JAX generation."""
    if not entry:
        return []
    m, r = entry.get("measurements", {}), entry.get("ratios", {})
    turns = entry.get("in_turns") or {}
    # The goal is judged on the generations timed in turns where the run has them.
    value = r.get("torch_over_jax_in_turns") or r.get("torch_over_jax")
    goal = "–" if value is None else ("yes" if value >= EXAMPLE_GOAL else "no")
    lines = ["", "Upstream's MLP example (`3 -> 16 -> 16 -> 1`, relu, 64 members, rank 8, `adamw`, "
             "`noise_reuse=0`): `EggrollTrainer.step` on the MLP as an `nn.Sequential` (one torch thread) "
             "against upstream's generation in `jax_reference`, jitted; milliseconds per call (median). Each "
             "timed alone, then both generations again in turns (20 calls of one, then 20 of the other, "
             "repeated), whose ratio a changing load on the machine moves less:", "",
             "| inference | generation | JAX inference | JAX generation | torch / JAX | torch / JAX (CPU time) "
             "| generation, in turns | JAX generation, in turns | torch / JAX, in turns | "
             f"torch / JAX, in turns (CPU time) | torch / JAX >= {EXAMPLE_GOAL} |", "|---" * 11 + "|",
             f"| {_ms(m.get('inference'))} | {_ms(m.get('generation'))} | {_ms(m.get('jax_inference'))} | "
             f"{_ms(m.get('jax_generation'))} | {_fmt(r.get('torch_over_jax'))} | "
             f"{_fmt(r.get('torch_over_jax_cpu_time'))} | {_ms(turns.get('generation'))} | "
             f"{_ms(turns.get('jax_generation'))} | {_fmt(r.get('torch_over_jax_in_turns'))} | "
             f"{_fmt(r.get('torch_over_jax_in_turns_cpu_time'))} | {goal} |"]
    if "error" in turns:
        lines += ["", f"Not timed in turns: {turns['error'].splitlines()[0][:200]}"]
    return lines + _not_measured([entry])


def _random_lines(r: dict) -> list[str]:
    """The PRNG benchmark (``benchmarks/bench_random.py``) as a table, one row per generator."""
    if "error" in r:
        return [f"PRNG benchmark (`benchmarks/bench_random.py`): not measured ({r['error'][:200]})."]
    lines = [f"PRNG benchmark (`python -m benchmarks.bench_random --device {r['device']}`): "
             f"`normal(keys, {tuple(r['shape'])})` float32 for {r['population']} keys ({r['values'] / 2**20:.0f} Mi "
             f"values), JAX `jit(vmap(jax.random.normal))` on its {r['jax_backend']} backend in the same process; "
             f"goal: >= 1.0x JAX and within 2x of `torch.randn`'s time.", "",
             "| generator | ms | values/s | speed vs JAX | time vs torch.randn | bits equal JAX's |",
             "|---|---|---|---|---|---|"]
    per_variant = r.get("per_variant") or {r["variant"]: {"eggroll_s": r["eggroll_s"]}}
    for variant, v in per_variant.items():
        same = _fmt(r["fraction_bit_identical_to_jax"], 4) if variant == r["variant"] else \
            f"– (XLA:{variant.upper()}'s values)"
        lines.append(f"| eggroll_torch.random.normal, variant=\"{variant}\" | {v['eggroll_s'] * 1e3:.3g} | "
                     f"{r['values'] / v['eggroll_s']:.3g} | {r['jax_s'] / v['eggroll_s']:.2f}x | "
                     f"{v['eggroll_s'] / r['randn_s']:.2f}x | {same} |")
    lines.append(f"| jax.random.normal (jit+vmap) | {r['jax_s'] * 1e3:.3g} | {r['values'] / r['jax_s']:.3g} | 1.00x | "
                 f"{r['jax_s'] / r['randn_s']:.2f}x | – |")
    lines.append(f"| torch.randn (no JAX bits) | {r['randn_s'] * 1e3:.3g} | {r['values'] / r['randn_s']:.3g} | "
                 f"{r['jax_s'] / r['randn_s']:.2f}x | 1.00x | – |")
    lines.append(f"\nFirst call (tables, kernel compilation, first-use check): {r['eggroll_first_call_s']:.2f} s; "
                 f"{r['threads']} torch threads.")
    return lines


_INTRO = """# Performance

Generated by `python -m benchmarks report` from the results JSONs of `python -m benchmarks run`;
do not edit by hand. Reproduce: `make bench` (CPU, writes `reports/bench_cpu.json`) and, on a
CUDA machine, `python -m benchmarks run --device cuda --out reports/bench_cuda.json` (a run on
other hardware goes beside it, e.g. `reports/bench_cuda_h100.json`, and gets its own section);
then `python -m benchmarks report`.

Everything is measured through the public API: networks a user trains
(`benchmarks/nn_models.py`: residual MLP blocks, a GPT-style decoder, square stacks), unchanged
`nn.Module`s handed to `eggroll_torch.nn.EggrollTrainer`, in one process per device (medians of
repeated calls):

- **inference**: the same module without noise on all members' rows at once (replayed as a CUDA
  graph on CUDA).
- **generation**: one ES generation (population forward, fitness, shaping, update) through the
  trainer: `trainer.graphed_step(fitness)` on CUDA (replayed as one CUDA graph;
  `--no-cuda-graphs` turns that off), `trainer.step(fitness)` on the CPU; **gen. (eager)** is
  `trainer.step` on CUDA. Its noise is `eggroll_torch.random.normal`'s bit for bit and its
  forward agrees with the functional layer's: both checked on the device itself ("Self-check").
- **gen. (redrawn)**: the same generation by a trainer built with `keep_noise=False`, which
  draws each matrix's noise where the forward and the update use it instead of keeping the
  epoch's draws of every matrix (same bits, a second draw, one matrix's noise held at a time).
- **JAX**: the same architecture written with `jax_reference`'s primitives (`do_mm` per matrix,
  `get_noisy_standard` per other leaf, one member's forward vmapped over the population, jitted
  with `convert_fitnesses` and `do_updates`), same weights, same ES classes, same device.

Members `2p` and `2p + 1` share their noise with opposite signs, so the trainer draws one sample
per pair and its update is one matmul per matrix of inner size `N*r/2`, against inference's
`N*T`: `bound = 1 / (1 + r / (2T))` is what a generation can reach at best against inference,
and less by the cost of the noise and of the memory-bound passes around the matmuls. Goals:
on the H200 (bf16) gen / inf >= 0.85 x bound, torch / JAX >= 1.5 and peak memory
<= 1.5x inference's; on the 2-core CPU the block model >= 0.8 x bound and upstream's MLP example
>= 1.0x JAX.

Peak memory is what torch's allocator held at most, above what it held before: on CUDA its
statistics over building the callable and the timed calls; on the CPU the CPU allocator's
allocations over a separate build and two calls (`benchmarks.measure.allocator_peak_bytes`).

CPU specifics: the shared matmuls (EGGROLL's and inference's alike) go through oneDNN
(`eggroll_torch.fast.cpu_linear`), the noise and the population LayerNorm through small C
kernels; the MLP example runs torch
on one thread (its ops take microseconds); `OMP_WAIT_POLICY=PASSIVE`. On a shared machine wall
times move with the load: the "CPU time" ratio (process CPU seconds) is steadier.
"""


def _results_files(reports_dir: str, pattern: str) -> list[tuple[str, dict]]:
    """``(path, results)`` of every JSON file in ``reports_dir`` matching ``pattern``, sorted by path."""
    found = []
    for path in sorted(glob.glob(os.path.join(reports_dir, pattern))):
        with open(path) as f:
            found.append((path, json.load(f)))
    return found


def _rwkv7_section(loaded: list, reports_dir: str) -> list[str]:
    """The RWKV-7 population forward of every results file that has one (``--parts rwkv7``):
    the device files and ``bench_*_rwkv7.json``."""
    found = [(source, results) for _, source, results in loaded if results.get("rwkv7")]
    found += _results_files(reports_dir, "bench_*_rwkv7.json")
    lines = ["## RWKV-7 population forward", "",
             "`python -m benchmarks run --device cuda --parts rwkv7` (`benchmarks/rwkv7.py`): the torch model's",
             "population forward (`ScanRWKV.forward` with `EggRoll` and the population `iterinfo`, every member at",
             "once) against its pure batched inference (the identity noiser) and against `jax_reference`'s forward",
             "vmapped over members and jitted, as upstream's `generate_thread` runs it; random weights, rank 1,",
             "`noise_reuse=1`, `freeze_nonlora=True`. Goals: torch / JAX >= 1.5, gen / inf >= 0.85 x bound.", ""]
    if not found:
        return lines + ["No results yet.", ""]
    lines += ["| workload | card | inference ms | generation ms | JAX ms | gen / inf / bound | torch / JAX | commit |",
              "|---|---|---|---|---|---|---|---|"]
    for source, results in found:
        entry, env = results["rwkv7"], results["environment"]
        m, r = entry["measurements"], entry["ratios"]
        lines.append(f"| {entry['name']} | {env.get('gpu') or env.get('cpu')} | {_ms(m.get('inference'))} | "
                     f"{_ms(m.get('generation'))} | {_ms(m.get('jax_generation'))} | "
                     f"{_fmt(r.get('generation_over_bound'))} | {_fmt(r.get('torch_over_jax'))} | "
                     f"{env.get('commit')} (`{os.path.relpath(source)}`) |")
    return lines + [""]


def _llm_loop_section(reports_dir: str) -> list[str]:
    """The LLM generation loop of every ``bench_*_llm_loop.json`` (``benchmarks.llm_loop --out``)."""
    lines = ["## LLM generation loop", "",
             "`python -m benchmarks.llm_loop --device cuda --out reports/bench_cuda_llm_loop.json`: one generation",
             "of the LLM evolution loop (every member's prompt and sampled tokens, RWKV-7 with random weights) by",
             "`eggroll_torch.llm` with EGGROLL noise, by the same loop with no noise, and by `jax_reference.llm`",
             "(upstream's jitted, member-vmapped `generate_thread`), in one process. Goals: torch / JAX >= 1.5,",
             "torch / noise-free torch >= 0.85. Forward `compiled` (with `--compile`): the model's forward under",
             "`torch.compile` (`build_generate_batch(..., compile=True)`, the CLI's `--compile`).", ""]
    found = _results_files(reports_dir, "bench_*_llm_loop.json")
    if not found:
        return lines + ["No results yet.", ""]
    lines += ["| card | shape | dtype | N | prompt + generated | forward | torch tok/s | noise-free tok/s | "
              "JAX tok/s | torch / noise-free | torch / JAX | commit |", "|" + "---|" * 12]
    for path, results in found:
        loop, env = results["llm_loop"], results["environment"]
        info, m, r = loop["info"], loop["measurements"], loop["ratios"]

        def rate(name):
            return f"{m[name]['tokens_per_s']:.3g}" if name in m else "–"

        for forward, suffix, prefix in (("eager", "", "torch"), ("compiled", "_compiled", "compiled")):
            if f"torch_loop{suffix}" not in m:
                continue
            lines.append(
                f"| {env.get('gpu') or env.get('cpu')} | {info['shape']} | {info['dtype']} | {info['members']} | "
                f"{info['prompt']} + {info['generate']} | {forward} | {rate('torch_loop' + suffix)} | "
                f"{rate('torch_plain' + suffix)} | {rate('jax_loop')} | {_fmt(r.get(prefix + '_loop_over_plain'))} | "
                f"{_fmt(r.get(prefix + '_loop_over_jax'))} | {env.get('commit')} (`{os.path.relpath(path)}`) |")
    return lines + [""]


def _distributed_section(reports_dir: str) -> list[str]:
    """A table of every ``bench_distributed_*.json`` (``benchmarks/bench_distributed.py --json``)."""
    found = _results_files(reports_dir, "bench_distributed_*.json")
    lines = ["## Several GPUs", ""]
    if not found:
        return lines + ["No results yet (run `torchrun --standalone --nproc-per-node 2 "
                        "benchmarks/bench_distributed.py --json reports/bench_distributed_2gpu.json`).", ""]
    lines += [
        "`torchrun --standalone --nproc-per-node 2 benchmarks/bench_distributed.py --json ...`: the",
        "`eggroll_torch.distributed` trainer, each rank",
        "evaluating its contiguous share of whole antithetic pairs; bit-identity is checked against a",
        "one-process run in the same launch.",
        "",
        "| source | device | backend | workload | update | 1 GPU gen/s | world | gen/s | speedup | goal "
        "| bit-identical |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path, r in found:
        wl = r["workload"]
        shape = f"d={wl['dim']} L={wl['layers']} N={wl['population']} T={wl['tokens']} r={wl['rank']} {wl['dtype']}"
        goal = f">= 1.9: {'yes' if r['speedup_vs_single'] >= 1.9 else 'no'}" if r["world_size"] == 2 else "–"
        lines.append(
            f"| `{os.path.relpath(path)}` | {r['device']} | {r['backend']} (torch {r['torch']}) | {shape} | "
            f"{r['update']} | {_fmt(r['single_gen_per_s'])} | {r['world_size']} | "
            f"{_fmt(r['distributed_gen_per_s'])} | {_fmt(r['speedup_vs_single'])} | {goal} | "
            f"{'yes' if r['bit_identical_to_single'] and r['ranks_identical'] else 'NO'} |")
    return lines + [""] + _scaling_lines(reports_dir)


def _scaling_lines(reports_dir: str) -> list[str]:
    """The table and plot of ``scripts/scaling_multi_gpu.sh``'s summary (``scaling/scaling.json``)."""
    path = os.path.join(reports_dir, "scaling", "scaling.json")
    run_it = "`scripts/scaling_multi_gpu.sh reports/scaling` runs 1, 2, 4 and 8 GPUs in one command."
    if not os.path.exists(path):
        return ["Scaling over 4 and 8 GPUs: not run yet. " + run_it, ""]
    with open(path) as f:
        summary = json.load(f)
    wl = summary["workload"]
    lines = [
        f"Scaling (`scripts/scaling_multi_gpu.sh`, source `{os.path.relpath(path)}`): d={wl['dim']} L={wl['layers']} "
        f"N={wl['population']} T={wl['tokens']} r={wl['rank']} {wl['dtype']}, {summary['generations']} timed "
        f"generations after {summary['warmup']}, {summary['device']}, torch {summary['torch']}, "
        f"CUDA {summary['cuda']}, {summary['backend']}. Goal: >= {summary['efficiency_goal']:g} x linear.",
        "",
        "| GPUs | generations/s | members/s | speedup vs 1 GPU | efficiency | goal met |",
        "|---|---|---|---|---|---|",
    ]
    for row in summary["runs"]:
        met = "–" if row["meets_goal"] is None else ("yes" if row["meets_goal"] else "no")
        lines.append(f"| {row['gpus']} | {row['gen_per_s']:.3f} | {row['members_per_s']:.0f} | "
                     f"{_fmt(row['speedup'])} | {row['efficiency']:.3f} | {met} |")
    lines += ["", f"Final parameters and optimizer state bit-identical across every GPU count and rank: "
              f"{'yes' if summary['bit_identical'] else 'NO'}."]
    missing = [g for g in (1, 2, 4, 8) if g not in {row["gpus"] for row in summary["runs"]}]
    if missing:
        lines.append(f"Not run: {', '.join(map(str, missing))} GPUs (no such machine was lent). " + run_it)
    if summary.get("plot"):
        lines += ["", f"![scaling over GPUs](scaling/{summary['plot']})"]
    return lines + [""]


def write_report(paths, reports_dir: str = "reports", extra=()) -> list[str]:
    """Write ``PERFORMANCE.md`` (and plots) into ``reports_dir``; returns the written paths."""
    if paths is None:
        paths = _default_paths(reports_dir)
    # A run's own results file (``extra``) is often one of the defaults: one section each.
    loaded = _load(list(dict.fromkeys(os.path.realpath(p) for p in [*paths, *extra])))
    os.makedirs(reports_dir, exist_ok=True)
    written = []
    lines = [_INTRO]
    for device in ("cuda", "cpu"):
        runs = [(path, results) for kind, path, results in loaded if kind == device]
        if not runs:
            lines += [f"## {device.upper()}", "", f"No results yet (`reports/bench_{device}.json` is missing).", ""]
            continue
        for index, (source, results) in enumerate(runs):
            # The first run of a device keeps the plot's usual name; others are named after their file.
            stem = device if index == 0 else os.path.splitext(os.path.basename(source))[0].removeprefix("bench_")
            plot_name = f"throughput_{stem}.png"
            plotted = _plot(results, os.path.join(reports_dir, plot_name))
            if plotted:
                written.append(os.path.join(reports_dir, plot_name))
            lines += _device_section(device, os.path.relpath(source), results, plot_name if plotted else None) + [""]
    lines += _rwkv7_section(loaded, reports_dir)
    lines += _llm_loop_section(reports_dir)
    lines += _distributed_section(reports_dir)
    path = os.path.join(reports_dir, "PERFORMANCE.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    written.append(path)
    return written


def print_summary(results: dict) -> None:
    """The ratios of every workload, one line each."""
    print(f"\n== {results['device']}: {results['environment'].get('gpu') or results['environment'].get('cpu')}")
    for w in [*(results.get("api") or []), *([results["example"]] if results.get("example") else [])]:
        r = w.get("ratios", {})
        print(f"{w['name']:32s} " + "  ".join(f"{k} {_fmt(v)}" for k, v in r.items() if v is not None))
