"""``python -m benchmarks run --device cpu|cuda [--quick] [--out PATH]`` and ``python -m benchmarks report``."""
from __future__ import annotations

import argparse
import os
import sys

DEFAULT_BUDGET_S = {"cpu": 240.0, "cuda": 270.0}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="measure every workload of a device and write the results JSON")
    run.add_argument("--device", choices=("cpu", "cuda"), required=True)
    run.add_argument("--quick", action="store_true", help="tiny workloads (a smoke test, seconds)")
    run.add_argument("--out", help="results JSON (default: reports/bench_<device>.json, or a temporary "
                                   "file with --quick)")
    run.add_argument("--budget-s", type=float, help="stop starting new measurements after this many seconds "
                                                    "(default: 240 on cpu, 270 on cuda)")
    run.add_argument("--f32-matmul", choices=("highest", "high"), default="highest",
                     help="float32 matmul precision for both torch and JAX ('high' allows TF32)")
    run.add_argument("--no-cuda-graphs", action="store_true",
                     help="run the torch steps eagerly on CUDA (by default inference, forward and generation "
                          "are replayed as CUDA graphs, and the generation is also timed without one)")
    run.add_argument("--no-report", action="store_true", help="do not regenerate reports/PERFORMANCE.md")
    run.add_argument("--parts", default="api,example,sweep,random",
                     help="comma-separated subset of api,example,sweep,random,rwkv7 (default: all but "
                          "rwkv7, in that order of priority under the time budget)")
    report = commands.add_parser("report", help="write reports/PERFORMANCE.md and plots from results JSONs")
    report.add_argument("results", nargs="*", help="results JSONs (default: reports/bench_cpu.json, "
                                                   "reports/bench_cuda.json and runs on other hardware beside "
                                                   "them, reports/bench_<device>_<name>.json, those that exist)")
    report.add_argument("--reports-dir", default="reports")
    return parser


def _prepare_frameworks(device: str, f32_matmul: str) -> None:
    # Both must be set before jax is imported: JAX would otherwise grab 75% of the GPU, and on a
    # CPU run it must not pick up a GPU.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if device == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"
        # torch's OpenMP threads otherwise spin while waiting, which on a shared machine stalls
        # every parallel op behind descheduled spinners; read when torch is first imported.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA device")
    torch.set_float32_matmul_precision(f32_matmul)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "report":
        from .report import write_report

        written = write_report(args.results or None, args.reports_dir)
        print("\n".join(written))
        return 0
    from .workloads import PARTS

    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        sys.exit(f"--parts: unknown {unknown}; choose from {','.join(PARTS)}")
    _prepare_frameworks(args.device, args.f32_matmul)
    from .report import print_summary, write_report
    from .runner import Runner

    if args.out:
        out = args.out
    elif args.quick:
        import tempfile

        out = os.path.join(tempfile.mkdtemp(prefix="eggroll_bench_"), f"bench_{args.device}.json")
    else:
        out = os.path.join("reports", f"bench_{args.device}.json")
    budget = args.budget_s if args.budget_s is not None else DEFAULT_BUDGET_S[args.device]
    runner = Runner(args.device, quick=args.quick, out=out, budget_s=budget, f32_matmul=args.f32_matmul,
                    cuda_graphs=not args.no_cuda_graphs)
    results = runner.run(parts)
    print_summary(results)
    print(f"results: {out}")
    if not args.no_report and not args.quick:
        try:
            for path in write_report(None, "reports", extra=[out]):
                print(f"wrote {path}")
        except Exception as error:  # noqa: BLE001 - the results JSON is written; the report can be redone
            print(f"could not write the report ({error!r}); run `python -m benchmarks report` later")
    return 0


if __name__ == "__main__":
    sys.exit(main())
