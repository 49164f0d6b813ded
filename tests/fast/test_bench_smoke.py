"""The benchmark harness end to end on tiny workloads (no timing is asserted), and a
pytest-benchmark measurement of the bulk noise draw."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from benchmarks.__main__ import main
from benchmarks.measure import time_in_turns
from benchmarks.environment import _commit
from benchmarks.report import write_report
from eggroll_torch.fast import draw_pair_normals
from eggroll_torch.random import key, split


# A minute on a 2-core host (every part's JAX side is compiled): run by `make test-slow`.
@pytest.mark.slow
def test_bench_quick_run_writes_results_and_report(tmp_path, monkeypatch):
    # main() sets these for the run; monkeypatch restores them afterwards.
    for name, value in (("JAX_PLATFORMS", "cpu"), ("OMP_WAIT_POLICY", "PASSIVE"),
                        ("XLA_PYTHON_CLIENT_PREALLOCATE", "false")):
        monkeypatch.setenv(name, value)
    out = tmp_path / "bench_cpu.json"
    assert main(["run", "--device", "cpu", "--quick", "--out", str(out), "--budget-s", "600"]) == 0
    results = json.loads(out.read_text())
    assert results["device"] == "cpu" and results["quick"]
    example = results["example"]
    assert example["name"] == "mlp_example"
    failed = {k: v["error"] for k, v in example["measurements"].items() if "error" in v}
    assert not failed, failed
    assert set(example["measurements"]) == {"inference", "generation", "jax_inference", "jax_generation"}
    assert all(v["time_s"] > 0 and v["reps"] >= 1 for v in example["measurements"].values())
    assert set(example["in_turns"]) == {"generation", "jax_generation"}
    assert all(v["time_s"] > 0 and v["rounds"] >= 5 for v in example["in_turns"].values())
    assert all(math.isfinite(r) and r > 0 for r in example["ratios"].values() if r is not None)
    assert all(check.get("ok", check.get("bit_identical")) for check in results["selfcheck"].values())
    api = results["api"]
    assert [w["name"] for w in api] == ["quick_blocks_d32_n16_t8_r4", "quick_gpt_d32_l2_t8_n8_r2"]
    for workload in api:
        failed = {k: v["error"] for k, v in workload["measurements"].items() if "error" in v}
        assert not failed, failed
        assert set(workload["measurements"]) == {"inference", "generation", "generation_redrawn", "jax_generation"}
        assert all(v["peak_bytes"] > 0 for k, v in workload["measurements"].items() if not k.startswith("jax"))
        assert all(math.isfinite(r) and r > 0 for r in workload["ratios"].values() if r is not None)
    points = results["sweep"]["points"]
    assert [p["members"] for p in points] == [32] and "time_s" in points[0]["jax_generation"]
    written = write_report([str(out)], str(tmp_path))
    report = (tmp_path / "PERFORMANCE.md").read_text()
    assert "Upstream's MLP example" in report and "No results yet" in report  # no CUDA results here
    assert "quick_gpt_d32_l2_t8_n8_r2" in report and "Through the public API" in report
    assert (tmp_path / "throughput_cpu.png").stat().st_size > 0 and len(written) == 2


def test_allocator_peak_bytes_counts_what_run_holds_at_once():
    from benchmarks.measure import allocator_peak_bytes

    held = torch.empty(1 << 20)  # allocated before run: neither it nor its free counts

    def run():
        nonlocal held
        first = torch.empty(1 << 18)  # 1 MiB
        second = torch.empty(1 << 19)  # 2 MiB, with the first: 3 MiB at once
        del first, second
        held = None
        kept = torch.empty(1 << 19)  # 2 MiB
        return kept

    assert allocator_peak_bytes(run) == 3 << 20


def test_bench_noise_draw(benchmark):
    keys = split(key(0), 4)
    out = torch.empty(4, 64, 4, 2 * 64).transpose(2, 3)
    result = benchmark.pedantic(draw_pair_normals, args=(keys, 1, out), kwargs={"noise_reuse": 1}, rounds=3)
    assert result is out and torch.isfinite(out).all()


def test_time_in_turns_alternates_batches():
    calls = []
    timed = time_in_turns({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, batch=2,
                          warmup=1)
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 3  # warm-up each, then a batch of each per round
    assert set(timed) == {"a", "b"}
    assert all(r["rounds"] == 3 and r["time_s"] >= 0 and r["cpu_s"] >= 0 for r in timed.values())


def test_bench_random_rejects_bad_repeats():
    from benchmarks.bench_random import main as bench_random_main

    with pytest.raises(ValueError, match="repeats must be a positive int"):
        bench_random_main("cpu", repeats=0)


def test_bench_report_renders_rwkv7_results(tmp_path):
    """A ``--parts rwkv7`` results file beside the device files gets its own table row."""
    entry = {"name": "rwkv7_tiny", "measurements": {"inference": {"time_s": 0.2}, "generation": {"time_s": 0.25},
                                                     "jax_generation": {"time_s": 0.5}},
             "ratios": {"generation_over_bound": 0.8, "torch_over_jax": 2.0}}
    results = {"device": "cuda", "rwkv7": entry, "environment": {"gpu": "Some GPU", "commit": "abc1234"}}
    (tmp_path / "bench_cuda_rwkv7.json").write_text(json.dumps(results))
    write_report([], str(tmp_path))
    report = (tmp_path / "PERFORMANCE.md").read_text()
    assert "| rwkv7_tiny | Some GPU | 200 | 250 | 500 | 0.80 | 2.00 | abc1234" in report


def test_bench_report_renders_llm_loop_results(tmp_path):
    """A ``benchmarks.llm_loop --out`` file gets its own table row, a missing JAX side a dash."""
    loop = {"info": {"shape": "0.1B", "dtype": "bfloat16", "members": 512, "prompt": 64, "generate": 128},
            "measurements": {"torch_loop": {"tokens_per_s": 44000.0}, "torch_plain": {"tokens_per_s": 52000.0}},
            "ratios": {"torch_loop_over_plain": 44 / 52}}
    results = {"llm_loop": loop, "environment": {"gpu": "Some GPU", "commit": "abc1234"}}
    (tmp_path / "bench_cuda_llm_loop.json").write_text(json.dumps(results))
    write_report([], str(tmp_path))
    report = (tmp_path / "PERFORMANCE.md").read_text()
    assert "| Some GPU | 0.1B | bfloat16 | 512 | 64 + 128 | eager | 4.4e+04 | 5.2e+04 | – | 0.85 | – | abc1234" \
        in report
    assert "| compiled |" not in report


def test_bench_report_renders_compiled_llm_loop_rows(tmp_path):
    """With ``--compile`` results, a second row per card gives the compiled forward's rates and ratios."""
    rates = {"torch_loop": 44000.0, "torch_plain": 52000.0, "torch_loop_compiled": 90000.0,
             "torch_plain_compiled": 100000.0, "jax_loop": 60000.0}
    loop = {"info": {"shape": "0.1B", "dtype": "bfloat16", "members": 512, "prompt": 64, "generate": 128},
            "measurements": {name: {"tokens_per_s": rate} for name, rate in rates.items()},
            "ratios": {"torch_loop_over_plain": 44 / 52, "torch_loop_over_jax": 44 / 60,
                       "compiled_loop_over_plain": 0.9, "compiled_loop_over_jax": 1.5}}
    results = {"llm_loop": loop, "environment": {"gpu": "Some GPU", "commit": "abc1234"}}
    (tmp_path / "bench_cuda_llm_loop.json").write_text(json.dumps(results))
    write_report([], str(tmp_path))
    report = (tmp_path / "PERFORMANCE.md").read_text()
    assert "| 64 + 128 | eager | 4.4e+04 | 5.2e+04 | 6e+04 | 0.85 | 0.73 | abc1234" in report
    assert "| 64 + 128 | compiled | 9e+04 | 1e+05 | 6e+04 | 0.90 | 1.50 | abc1234" in report


def test_llm_loop_writes_every_measure(tmp_path, monkeypatch):
    """``benchmarks.llm_loop`` on a tiny RWKV-7 on the CPU: all three sides and both ratios in
    its ``--out`` file, the JAX side timed from its compiled executable ``--jax-reps`` times."""
    from benchmarks.llm_loop import main as llm_loop_main

    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    out = tmp_path / "loop.json"
    assert llm_loop_main(["--device", "cpu", "--shape", "2,1,16,64", "--members", "8", "--prompt", "2",
                          "--generate", "2", "--dtype", "float32", "--reps", "1", "--jax-reps", "1",
                          "--out", str(out)]) == 0
    loop = json.loads(out.read_text())["llm_loop"]
    assert set(loop["measurements"]) == {"torch_loop", "torch_plain", "jax_compile", "jax_loop"}
    assert loop["info"]["reps"] == 1 and loop["info"]["jax_reps"] == 1
    assert set(loop["ratios"]) == {"torch_loop_over_plain", "torch_loop_over_jax"}
    assert all(math.isfinite(r) and r > 0 for r in loop["ratios"].values())


@pytest.mark.parametrize("flag", ["--reps", "--jax-reps"])
def test_llm_loop_rejects_no_timed_calls(flag, capsys):
    from benchmarks.llm_loop import main as llm_loop_main

    with pytest.raises(SystemExit):
        llm_loop_main([flag, "0"])
    assert f"{flag} must be >= 1" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")
def test_results_name_a_dirty_checkout_as_such(tmp_path):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    git("init", "-q")
    (tmp_path / "a.txt").write_text("one")
    git("add", "a.txt")
    git("commit", "-q", "-m", "one")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tmp_path, capture_output=True,
                          text=True).stdout.strip()
    (tmp_path / "untracked.txt").write_text("not part of any commit")
    assert _commit(str(tmp_path)) == head
    (tmp_path / "a.txt").write_text("two")
    assert _commit(str(tmp_path)) == f"{head}-dirty"


def test_bench_report_gives_a_run_on_other_hardware_its_own_section(tmp_path):
    """``bench_cuda_<name>.json`` beside ``bench_cuda.json`` is rendered as a second CUDA section;
    a device file without trainer workloads (an rwkv7-only run) is not."""
    reports = Path(__file__).resolve().parents[2] / "reports"
    recorded = json.loads((reports / "bench_cuda.json").read_text())
    other = json.loads(json.dumps(recorded))
    other["environment"]["gpu"] = "Other GPU"
    other["environment"]["commit"] = "abc1234"
    (tmp_path / "bench_cuda.json").write_text(json.dumps(recorded))
    (tmp_path / "bench_cuda_other.json").write_text(json.dumps(other))
    (tmp_path / "bench_cuda_rwkv7.json").write_text((reports / "bench_cuda_rwkv7.json").read_text())
    write_report(None, str(tmp_path))
    report = (tmp_path / "PERFORMANCE.md").read_text()
    assert f"## CUDA: {recorded['environment']['gpu']}" in report
    assert "## CUDA: Other GPU" in report and "commit abc1234" in report
    assert "Source: `" in report and report.count("## CUDA: ") == 2
    write_report(None, str(tmp_path), extra=[str(tmp_path / "bench_cuda.json")])
    assert (tmp_path / "PERFORMANCE.md").read_text().count("## CUDA: ") == 2, "a run's own file named twice"
