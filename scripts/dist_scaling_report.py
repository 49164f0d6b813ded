"""Summarize a scaling run of ``scripts/scaling_multi_gpu.sh``: throughput per GPU count against
one GPU, parallel efficiency, and whether every run ended in the same state.

    python scripts/dist_scaling_report.py OUT_DIR [--requested 1 2 4 8]

Reads ``OUT_DIR/w<G>.json`` and ``OUT_DIR/digests/w<G>/``; writes ``OUT_DIR/scaling.json``,
``OUT_DIR/scaling.png`` (when matplotlib is installed) and prints a Markdown table. Exits 1 when
the final states differ.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys

from dist_digests import compare

EFFICIENCY_GOAL = 0.9


def load_runs(out: str) -> list[dict]:
    runs = []
    for path in glob.glob(os.path.join(out, "w*.json")):
        match = re.fullmatch(r"w(\d+)\.json", os.path.basename(path))
        if match:
            with open(path) as handle:
                runs.append(json.load(handle))
    return sorted(runs, key=lambda run: run["world_size"])


def summarize(out: str, requested: list[int]) -> dict:
    runs = load_runs(out)
    if not runs:
        raise SystemExit(f"no w<G>.json benchmark results in {out}")
    single = next((run for run in runs if run["world_size"] == 1), None)
    rows = []
    for run in runs:
        speedup = None if single is None else run["distributed_gen_per_s"] / single["distributed_gen_per_s"]
        rows.append({
            "gpus": run["world_size"],
            "gen_per_s": run["distributed_gen_per_s"],
            "members_per_s": run["members_per_s"],
            "speedup": speedup,
            "efficiency": None if speedup is None else speedup / run["world_size"],
            "meets_goal": None if speedup is None else speedup >= EFFICIENCY_GOAL * run["world_size"],
        })
    digest_dirs = sorted(glob.glob(os.path.join(out, "digests", "w*")))
    identity = compare(digest_dirs)
    ran = {row["gpus"] for row in rows}
    return {
        "device": runs[0]["device"], "torch": runs[0]["torch"], "cuda": runs[0]["cuda"],
        "backend": runs[0]["backend"], "workload": runs[0]["workload"],
        "generations": runs[0]["generations"], "warmup": runs[0]["warmup"],
        "efficiency_goal": EFFICIENCY_GOAL, "runs": rows,
        "not_run": [g for g in requested if g not in ran],
        "bit_identical": identity["bit_identical"], "digests": identity["records"],
    }


def plot(summary: dict, path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [row for row in summary["runs"] if row["speedup"] is not None]
    gpus = [row["gpus"] for row in rows]
    figure, axes = plt.subplots(figsize=(5, 4))
    axes.plot(gpus, gpus, "k--", label="linear")
    axes.plot(gpus, [EFFICIENCY_GOAL * g for g in gpus], "k:", label=f"{EFFICIENCY_GOAL:g} x linear (goal)")
    axes.plot(gpus, [row["speedup"] for row in rows], "o-", label="DistributedTrainer")
    axes.set_xlabel("GPUs")
    axes.set_ylabel("generation throughput / 1 GPU")
    workload = summary["workload"]
    axes.set_title(f"d={workload['dim']} L={workload['layers']} N={workload['population']} "
                   f"T={workload['tokens']} r={workload['rank']} {workload['dtype']}\n{summary['device']}",
                   fontsize=9)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return True


def markdown(summary: dict) -> str:
    lines = ["| GPUs | generations/s | members/s | speedup vs 1 GPU | efficiency |", "|---|---|---|---|---|"]
    for row in summary["runs"]:
        speedup = "n/a" if row["speedup"] is None else f"{row['speedup']:.2f}x"
        efficiency = "n/a" if row["efficiency"] is None else f"{row['efficiency']:.2f}"
        lines.append(
            f"| {row['gpus']} | {row['gen_per_s']:.3f} | {row['members_per_s']:.0f} | {speedup} | {efficiency} |"
        )
    lines.append("")
    lines.append(f"Final state bit-identical across all runs and ranks: {summary['bit_identical']}. "
                 f"Device: {summary['device']}, torch {summary['torch']}, CUDA {summary['cuda']}.")
    if summary["not_run"]:
        lines.append(f"Not run (too few GPUs on this host): {summary['not_run']}.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--requested", type=int, nargs="*", default=[1, 2, 4, 8])
    args = parser.parse_args(argv)
    summary = summarize(args.out, args.requested)
    summary["plot"] = "scaling.png" if plot(summary, os.path.join(args.out, "scaling.png")) else None
    with open(os.path.join(args.out, "scaling.json"), "w") as handle:
        json.dump(summary, handle, indent=2)
    print(markdown(summary))
    return 0 if summary["bit_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
