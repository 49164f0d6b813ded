"""The torch side of a stack workload: pure inference, torch.randn, and EGGROLL three ways.

* ``inference``: the same layers without noise, ``tanh(x @ W.T)`` (on the CPU through the same
  oneDNN product as EGGROLL, with the tanh fused), mean output per member.
* ``randn``: ``torch.randn`` for as many normals as upstream draws per generation.
* ``noise``: :mod:`eggroll_torch.fast`'s bit-exact draw of the generation's noise (one draw per
  antithetic pair, so half upstream's count).
* ``forward``: noise + perturbed forward + fitness; ``generation``: that plus fitness shaping and
  the SGD step (:class:`eggroll_torch.fast.LowRankStack`); ``generation_torch_ops``: the same
  with the forward in torch ops instead of the Triton kernels (CUDA only, to show what they buy);
  ``generation_no_triton``: noise in torch ops as well, measured only if a Triton kernel failed.
* The same layers through the public trainer are a trainer workload (:mod:`.torch_trainer`).

With ``cuda_graphs``, inference, forward and generation are replayed as CUDA graphs (static shapes), with the
epoch counter on the device; ``generation_eager`` is the same generation without a graph.
"""
from __future__ import annotations

import torch

from eggroll_torch import random as es_random
from eggroll_torch.fast import GraphedStep, LowRankStack, layer_keys, standardize
from eggroll_torch.fast.cpu_linear import linear

ES_SEED = 1


class TorchStack:
    """Model, inputs and step functions of one stack workload on ``device``."""

    def __init__(self, workload, device: str, cuda_graphs: bool = False):
        self.wl = workload
        self.device = device
        self.cuda_graphs = cuda_graphs
        self.dtype = getattr(torch, workload.dtype)
        gen = torch.Generator(device=device).manual_seed(0)
        d, n, t = workload.width, workload.members, workload.tokens
        self.weights = [
            (torch.randn(d, d, generator=gen, device=device, dtype=torch.float32) / d**0.5).to(self.dtype)
            for _ in range(workload.layers)
        ]
        self.x = torch.randn(n, t, d, generator=gen, device=device, dtype=self.dtype)
        self.es_key = es_random.key(ES_SEED, device=device)

    def weights_numpy(self) -> list:
        """The initial weights as float32 numpy arrays (for the JAX side)."""
        return [w.float().cpu().numpy() for w in self.weights]

    def _graphed(self, step):
        """``step`` as a CUDA graph on CUDA; if capture fails, ``step`` itself, with the reason
        attached as ``graph_error`` (reported next to the timing)."""
        if self.device != "cuda" or not self.cuda_graphs:
            return step
        try:
            return GraphedStep(step, self.device)
        except RuntimeError as error:
            torch.cuda.synchronize()
            step.graph_error = f"{type(error).__name__}: {str(error)[:300]}"
            return step

    def inference(self):
        """Callable running one batched inference pass; returns the ``(N,)`` fitnesses."""
        n, t, d = self.x.shape
        weights = [w.clone() for w in self.weights]

        def step():
            h = self.x.view(n * t, d)
            for index, w in enumerate(weights):
                h = linear(h, w, activation="tanh" if index < len(weights) - 1 else "identity")
            return h.view(n, -1).mean(1, dtype=torch.float32)

        return self._graphed(step)

    def randn(self):
        """Callable drawing upstream's per-generation normal count with ``torch.randn``."""
        d, n, r, layers = self.wl.width, self.wl.members, self.wl.rank, self.wl.layers
        return lambda: torch.randn(layers, n, 2 * d, r, device=self.device, dtype=self.dtype)

    def engine(self, fused: bool | None = None, noise_kernel: str | None = "auto") -> LowRankStack:
        """A fresh :class:`LowRankStack` over copies of the initial weights."""
        keys, _ = layer_keys(self.es_key, self.wl.layers, with_bias=False)
        return LowRankStack([w.clone() for w in self.weights], keys, sigma=self.wl.sigma, rank=self.wl.rank,
                            num_members=self.wl.members, activation="tanh", noise_reuse=1, fused=fused,
                            noise_kernel=noise_kernel)

    def _epoch(self):
        return torch.zeros(1, dtype=torch.int32, device=self.device)

    def noise(self):
        """Callable drawing one generation's noise (all layers, all pairs)."""
        engine, epoch = self.engine(), self._epoch()

        def step():
            epoch.add_(1)
            return engine.draw(epoch).factors[0]

        return step

    def forward(self, fused: bool | None = None):
        """Callable: noise + perturbed forward + fitness for the whole population."""
        engine, epoch = self.engine(fused), self._epoch()

        def step():
            epoch.add_(1)
            return engine.forward(self.x, engine.draw(epoch), reduce="mean")

        return self._graphed(step)

    def generation(self, fused: bool | None = None, noise_kernel: str | None = "auto", graphed: bool = True):
        """Callable: one full generation (forward, fitness shaping, SGD step); ``graphed=False``
        runs it eagerly even when the workload uses CUDA graphs."""
        engine, epoch = self.engine(fused, noise_kernel), self._epoch()

        def step():
            epoch.add_(1)
            noise = engine.draw(epoch)
            raw = engine.forward(self.x, noise, reduce="mean")
            engine.sgd_step_(standardize(raw), noise, self.wl.lr)
            return raw

        return self._graphed(step) if graphed else step
