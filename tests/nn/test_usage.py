"""The usage example in ``eggroll_torch.nn``'s docstring runs as written, and its checkpoint resumes."""
from __future__ import annotations

import os
import textwrap

import torch

import eggroll_torch.nn


def _example_code() -> str:
    doc = eggroll_torch.nn.__doc__
    block = doc.split("Usage::\n\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines))


def test_usage_example_runs_and_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    scope: dict = {}
    exec(compile(_example_code(), "eggroll_torch.nn usage", "exec"), scope)
    trainer, metrics = scope["trainer"], scope["metrics"]
    assert trainer.epoch == 10 and metrics["epoch"] == 9
    assert os.path.exists(tmp_path / "es.pt")
    resumed = scope["EggrollTrainer"](
        scope["nn"].Sequential(scope["nn"].Linear(3, 16), scope["nn"].ReLU(), scope["nn"].Linear(16, 1)),
        sigma=0.2, lr=0.03, population_size=64, rank=8, solver="adamw", solver_kwargs={"b1": 0.9, "b2": 0.999},
    )
    resumed.load_state_dict(torch.load(tmp_path / "es.pt"))
    assert resumed.epoch == 10
    for path, param in trainer.module.named_parameters():
        assert torch.equal(dict(resumed.module.named_parameters())[path], param)
