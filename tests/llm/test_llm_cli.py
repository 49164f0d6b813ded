"""``python -m eggroll_torch.llm train``: logs, checkpoints, exact resume, errors, torchrun."""
from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from eggroll_torch import tree
from eggroll_torch.llm.train import build_parser, main, run

REPOSITORY = Path(__file__).resolve().parents[2]
ARGS = ["train", "--model", "random:n_layer=2,n_head=2,head_size=4,vocab_size=24", "--task", "FastZero",
        "--population", "8", "--generations-per-prompt", "2", "--generation-length", "8", "--sigma", "0.05",
        "--lr", "0.1", "--temperature", "1.0", "--device", "cpu", "--no-progress", "--tokenizer", "none"]


def _run(*extra):
    return run(build_parser().parse_args(ARGS + list(extra)))


def _same_params(a, b):
    for x, y in zip(tree.leaves(a["params"]), tree.leaves(b["params"])):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_resume_continues_the_same_run(tmp_path):
    straight = _run("--epochs", "3", "--out", str(tmp_path / "straight"))
    _run("--epochs", "2", "--out", str(tmp_path / "split"))
    resumed = _run("--epochs", "3", "--out", str(tmp_path / "split"), "--resume")
    assert straight["epoch"] == resumed["epoch"] == 3
    _same_params(straight, resumed)
    saved = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=False)
    _same_params(saved, straight)
    with open(tmp_path / "split" / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    lines = (tmp_path / "straight" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["max_fitness"] for line in lines] == [float(r["max_fitness"]) for r in rows]
    assert all(float(r["tokens_per_s"]) > 0 for r in rows)


def test_resume_refuses_other_settings(tmp_path):
    _run("--epochs", "1", "--out", str(tmp_path))
    with pytest.raises(ValueError, match=r"other settings \(config.sigma\)"):
        run(build_parser().parse_args(ARGS + ["--epochs", "2", "--out", str(tmp_path), "--resume", "--sigma", "0.1"]))
    with pytest.raises(FileNotFoundError, match="run once without --resume"):
        _run("--epochs", "2", "--out", str(tmp_path / "empty"), "--resume")


@pytest.mark.parametrize("change,message", [
    (["--model", "tiny"], "--model 'tiny'"),
    (["--model", "random:n_layer=2"], "random:n_layer=L"),
    (["--task", "nosuchtask"], "--task must be one of"),
    (["--population", "7"], "multiple of generations_per_prompt"),
    (["--epochs", "0"], "--epochs must be >= 1"),
])
def test_bad_arguments_exit_2_with_a_message(capsys, change, message):
    argv = list(ARGS)
    for flag, value in zip(change[::2], change[1::2]):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_two_ranks_equal_one_process(tmp_path):
    alone = _run("--epochs", "2", "--members-per-call", "2")
    env = dict(os.environ, PYTHONPATH=str(REPOSITORY), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
               str(_free_port()), "-m", "eggroll_torch.llm"] + ARGS + [
        "--epochs", "2", "--members-per-call", "2", "--out", str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, cwd=REPOSITORY)
    assert done.returncode == 0, done.stderr[-3000:]
    _same_params(torch.load(tmp_path / "checkpoint.pt", weights_only=False), alone)


@pytest.mark.cuda
@pytest.mark.skipif(not (torch.distributed.is_nccl_available() and torch.cuda.device_count() >= 2),
                    reason="needs NCCL and a second CUDA device")
def test_torchrun_nccl_two_gpus_equal_one_gpu(tmp_path):
    """The same run on two GPUs under NCCL as in one process on cuda:0; with two members per
    call every matmul has the same shape on both sides, so the params agree bit for bit."""
    argv = [a for a in ARGS if a not in ("--device", "cpu")]
    alone = run(build_parser().parse_args(argv + ["--epochs", "2", "--members-per-call", "2", "--device", "cuda:0"]))
    env = dict(os.environ, PYTHONPATH=str(REPOSITORY), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
               str(_free_port()), "-m", "eggroll_torch.llm"] + argv + [
        "--epochs", "2", "--members-per-call", "2", "--out", str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=REPOSITORY)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False, map_location="cuda:0")
    _same_params(saved, alone)


def test_no_cuda_graph_reaches_the_generate_function(monkeypatch):
    """``--no-cuda-graph`` builds the generate function with ``cuda_graph=False`` (the default
    with True); on the CPU, which never records, the run is the same either way."""
    from eggroll_torch.llm import evolution

    seen = []
    build = evolution.build_generate_batch
    monkeypatch.setattr(evolution, "build_generate_batch",
                        lambda *a, **k: seen.append(k["cuda_graph"]) or build(*a, **k))
    default, eager = _run("--epochs", "1"), _run("--epochs", "1", "--no-cuda-graph")
    assert seen == [True, False]
    _same_params(default, eager)


def test_evolution_cuda_graph_must_be_a_bool():
    from eggroll_torch.llm import Evolution

    with pytest.raises(TypeError, match="cuda_graph must be True or False"):
        Evolution(None, None, None, None, cuda_graph="no")
