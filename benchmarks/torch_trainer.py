"""The torch side of a trainer workload: the network's pure batched inference and an EGGROLL
generation through the public API, ``eggroll_torch.nn.EggrollTrainer``.

* ``inference``: the unchanged module on all ``N x T`` rows at once (``torch.no_grad``), then the
  workload's fitness; replayed as a CUDA graph on CUDA.
* ``generation``: ``trainer.graphed_step(fitness)`` on CUDA (the whole generation as one graph),
  ``trainer.step(fitness)`` elsewhere; ``generation_eager``: ``trainer.step`` on CUDA;
  ``generation_redrawn``: ``generation`` of a trainer built with ``keep_noise=False``.
"""
from __future__ import annotations

import torch

from eggroll_torch import random as es_random
from eggroll_torch.fast import GraphedStep
from eggroll_torch.nn import EggrollTrainer
from .nn_models import GPT, BlockModel, SquareStack, log_likelihood

ES_SEED = 1


def build_model(wl) -> torch.nn.Module:
    """The workload's network with weights from ``torch.manual_seed(0)``, in float32 on the CPU."""
    torch.manual_seed(0)
    if wl.model == "blocks":
        return BlockModel(wl.width, wl.layers)
    if wl.model == "gpt":
        return GPT(wl.vocab, wl.width, wl.layers, wl.heads, wl.tokens, tied=wl.tied)
    if wl.model == "stack":
        return SquareStack(wl.width, wl.layers)
    raise ValueError(f"unknown trainer workload model {wl.model!r}")


class TorchTrainerSide:
    """Model, inputs and step functions of one trainer workload on ``device``."""

    def __init__(self, workload, device: str, cuda_graphs: bool = False):
        self.wl = workload
        self.device = device
        self.cuda_graphs = cuda_graphs
        self.dtype = getattr(torch, workload.dtype)
        self.model = build_model(workload)
        self.initial = {path: p.detach().float().numpy().copy() for path, p in self.model.named_parameters()}
        self.model = self.model.to(device=device, dtype=self.dtype)
        gen = torch.Generator(device=device).manual_seed(0)
        n, t = workload.members, workload.tokens
        if workload.model == "gpt":
            tokens = torch.randint(0, workload.vocab, (n, 1, t + 1), generator=gen, device=device)
            self.inputs, self.targets = tokens[..., :t].contiguous(), tokens[..., 1:].contiguous()
        else:
            self.inputs = torch.randn(n, t, workload.width, generator=gen, device=device, dtype=self.dtype)
            self.targets = None

    def fitness_of(self, outputs: torch.Tensor) -> torch.Tensor:
        """``(N,)`` float32 fitness from outputs with a leading member axis."""
        if self.targets is None:
            return outputs.float().flatten(1).mean(1)
        return log_likelihood(outputs, self.targets)

    def _graphed(self, step):
        if self.device != "cuda" or not self.cuda_graphs:
            return step
        return GraphedStep(step, self.device)

    def inference(self):
        """Callable: one batched pass of the unperturbed network over every member's rows."""
        members = self.wl.members

        def step():
            with torch.no_grad():
                return self.fitness_of(self.model(self.inputs.flatten(0, 1)).unflatten(0, (members, -1)))

        return self._graphed(step)

    def trainer(self, keep_noise: bool = True) -> EggrollTrainer:
        """A fresh trainer over a copy of the initial weights."""
        import copy

        return EggrollTrainer(copy.deepcopy(self.model), self.wl.sigma, self.wl.lr, population_size=self.wl.members,
                              rank=self.wl.rank, noise_reuse=1, es_key=es_random.key(ES_SEED, device=self.device),
                              keep_noise=keep_noise)

    def generation(self, graphed: bool = True, keep_noise: bool = True):
        """Callable: one generation through the public API (a recorded graph on CUDA unless
        ``graphed=False`` or graphs are off), by a trainer built with ``keep_noise``."""
        trainer = self.trainer(keep_noise)

        def fitness(population):
            return self.fitness_of(population(self.inputs))

        if graphed and self.cuda_graphs and self.device == "cuda":
            return trainer.graphed_step(fitness)
        return lambda: trainer.step(fitness)
