"""Probe modules whose outputs reveal each member's perturbation exactly, and what one run shows.

The probe (:func:`probe_module`) holds two bias-free ``nn.Linear(W, W)`` layers ``a`` and ``b``
and one ``nn.Linear(W, W)`` with a bias, ``c``, all zero. Every member runs it on the same input
``[0; I]`` (a zero row, then the identity). With zero weights a member's output rows ``1..W`` of
``a`` and ``b`` are exactly its perturbations transposed (``e_i @ (0 + E).T`` involves one
product per entry, with exact zeros elsewhere), and row 0 of ``c`` is exactly its bias
perturbation (``0 @ W.T + (0 + e)``). ``c``'s weight is read as row ``i`` minus row 0, to one
rounding. So the perturbations are observed, whatever RNG the port uses, and the update is the
parameters after a step.

:class:`Observer` runs a port for a few generations on a probe and keeps what it saw
(:class:`Run`); the checks share runs of the same configuration.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from ..adapters.trainer import TrainerConfig

WIDTH = 16
MATRICES = ("a.weight", "b.weight", "c.weight")
EXACT = ("a.weight", "b.weight", "c.bias")
EXACT_MATRICES = ("a.weight", "b.weight")


def probe_module():
    """The probe: ``a``, ``b`` (bias-free) and ``c`` ``nn.Linear(WIDTH, WIDTH)``, zero, float32;
    its forward concatenates the three outputs on the last axis."""
    import torch
    from torch import nn

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(WIDTH, WIDTH, bias=False)
            self.b = nn.Linear(WIDTH, WIDTH, bias=False)
            self.c = nn.Linear(WIDTH, WIDTH)
            for p in self.parameters():
                nn.init.zeros_(p)

        def forward(self, x):
            return torch.cat([self.a(x), self.b(x), self.c(x)], dim=-1)

    return Probe()


def probe_inputs(population: int):
    """``(N, WIDTH + 1, WIDTH)``: every member's ``[0; I]``."""
    import torch

    basis = torch.cat([torch.zeros(1, WIDTH), torch.eye(WIDTH)])
    return basis.expand(population, WIDTH + 1, WIDTH).contiguous()


def decode(output: np.ndarray) -> dict[str, np.ndarray]:
    """``{parameter: perturbation}`` (float64) of one member from its ``(WIDTH + 1, 3 * WIDTH)``
    output."""
    out = np.asarray(output, np.float64)
    a, b, c = out[:, :WIDTH], out[:, WIDTH:2 * WIDTH], out[:, 2 * WIDTH:]
    return {"a.weight": a[1:].T, "b.weight": b[1:].T, "c.weight": (c[1:] - c[:1]).T, "c.bias": c[0]}


class FitnessRecorder:
    """The fitness function a port's generation calls: records every member's output in call
    order and returns the preset raw fitness of each; calls after the ``N``-th return zeros."""

    def __init__(self, raw: np.ndarray):
        self.raw = np.asarray(raw, np.float32)
        self.outputs = []
        self.calls = 0

    def __call__(self, outputs):
        import torch

        if not isinstance(outputs, torch.Tensor) or outputs.ndim < 1:
            raise TypeError("the port's step must call fitness(outputs) with a tensor whose first axis is members, "
                            f"got {type(outputs).__name__}")
        batch = outputs.detach().to("cpu", torch.float32).numpy().copy()
        start = self.calls
        self.calls += batch.shape[0]
        self.outputs.extend(batch)
        values = np.zeros(batch.shape[0], np.float32)
        inside = max(0, min(batch.shape[0], self.raw.size - start))
        values[:inside] = self.raw[start:start + inside]
        return torch.as_tensor(values, device=outputs.device)

    def members(self) -> list[dict[str, np.ndarray]]:
        """The decoded perturbations of the first ``N`` calls (members in thread-id order)."""
        if len(self.outputs) < self.raw.size:
            raise RuntimeError(f"the port evaluated {len(self.outputs)} members, the population has {self.raw.size}")
        return [decode(o) for o in self.outputs[:self.raw.size]]


@dataclass
class Run:
    """What a port did on the probe: per generation, each member's perturbation, the raw
    fitnesses it was given and the parameters before and after the update."""

    config: TrainerConfig
    perturbations: list = field(default_factory=list)
    raw: list = field(default_factory=list)
    before: list = field(default_factory=list)
    after: list = field(default_factory=list)
    extra_calls: list = field(default_factory=list)


def parameters(module) -> dict[str, np.ndarray]:
    """The module's parameters as float64 copies."""
    return {name: p.detach().to("cpu").double().numpy().copy() for name, p in module.named_parameters()}


def raw_fitnesses(population: int, generation: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """The raw fitnesses the harness hands out: distinct normals of standard deviation ``scale``,
    one draw per generation."""
    return (scale * np.random.default_rng([seed, generation]).standard_normal(population)).astype(np.float32)


class Observer:
    """Runs of one adapter on the probe, cached per ``(config, generations)``."""

    def __init__(self, adapter):
        self.adapter = adapter
        self.notes = {}
        self._runs = {}
        self._memo = {}

    def memo(self, key, compute):
        """``compute()`` once per ``key`` for this observer (e.g. reference runs several checks share)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def run(self, config: TrainerConfig, generations: int, fitness_scale: float = 1.0) -> Run:
        """The port's first ``generations`` generations on a fresh probe with ``config``, given
        raw fitnesses of spread ``fitness_scale``.

        Raises:
            Unsupported: the adapter cannot build ``config``.
        """
        key = (config, generations, fitness_scale)
        if key not in self._runs:
            self._runs[key] = self._observe(config, generations, fitness_scale)
        return self._runs[key]

    def _observe(self, config: TrainerConfig, generations: int, fitness_scale: float) -> Run:
        module = probe_module()
        trainer = self.adapter.build(module, config)
        inputs = probe_inputs(config.population)
        run = Run(config)
        for generation in range(generations):
            raw = raw_fitnesses(config.population, generation, config.seed, fitness_scale)
            recorder = FitnessRecorder(raw)
            run.before.append(parameters(module))
            self.adapter.step(trainer, inputs, recorder)
            run.after.append(parameters(module))
            run.perturbations.append(recorder.members())
            run.raw.append(raw)
            run.extra_calls.append(max(0, recorder.calls - config.population))
        return run


def noise_digest(adapter, config: TrainerConfig) -> str:
    """sha256 of every member's first-generation perturbations on a fresh probe: equal digests,
    equal noise."""
    h = hashlib.sha256()
    for member in Observer(adapter).run(config, 1).perturbations[0]:
        for name in sorted(member):
            h.update(np.ascontiguousarray(member[name]).tobytes())
    return h.hexdigest()
