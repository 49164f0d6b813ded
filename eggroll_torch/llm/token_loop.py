"""The per-token loop of a generation: eagerly, or on CUDA as CUDA graphs recorded once and replayed.

One token step of a population is a few thousand small kernels (every layer's ops, the noise
products, the key split and the Gumbel draw) whose launches, not their arithmetic, bound the
step, and running one step's Python on the GPU costs more than ten replayed steps. Recorded and
replayed, the same kernels run in the same order on the same data, so the tokens are those of
the eager loop. :class:`RecordedLoop` records its graphs once and replays them for every later
generation whose tensors it reads were refilled in place (:mod:`.utils` keeps them).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["STEPS_PER_GRAPH", "RecordedLoop", "run_steps"]

# Steps recorded in one graph. A replay must leave the state where the next replay reads it, a
# copy of the whole recurrent state ((N, L, 2 + S, C)); recording two steps halves those copies.
STEPS_PER_GRAPH = 2

Step = Callable[[torch.Tensor, bool], torch.Tensor]


def run_steps(step: Step, state: torch.Tensor, n_steps: int) -> torch.Tensor:
    """``state = step(state, first)`` ``n_steps`` times (``first`` True at the first step only);
    returns the last state."""
    for i in range(n_steps):
        state = step(state, i == 0)
    return state


class RecordedLoop:
    """``n_steps`` token steps from ``buffer``, replayed from CUDA graphs.

    ``step(state, first) -> state`` is one token step (``first``: the generation's first, which
    may draw what later steps reuse); it keeps everything else it reads and writes in tensors that
    outlive this object and must not synchronise with the host. ``buffer`` (the recurrent state
    ``(N, ...)``, contiguous) holds the state the generation starts from; a run leaves the last
    state in it. Before recording, every kind of step must have run once eagerly (kernels compile
    then), which :meth:`warm_up` does. Graphs are recorded when a run first needs them: the first
    ``STEPS_PER_GRAPH`` steps, ``STEPS_PER_GRAPH`` later steps, and the leftover steps.
    """

    def __init__(self, step: Step, buffer: torch.Tensor):
        if buffer.device.type != "cuda" or not buffer.is_contiguous():
            raise ValueError(f"buffer must be a contiguous CUDA tensor; got {buffer.device}, strides {buffer.stride()}")
        self.step, self.buffer = step, buffer
        self._pool = torch.cuda.graph_pool_handle()
        self._graphs: dict = {}

    def warm_up(self) -> None:
        """Runs the first step and a later one eagerly, on a side stream, from ``buffer`` (left
        unchanged); what else they write (counters, keys, tokens) the caller refills afterwards."""
        device = self.buffer.device
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            run_steps(self.step, self.buffer, STEPS_PER_GRAPH)
        torch.cuda.current_stream(device).wait_stream(side)

    def _graph(self, first: bool, n_steps: int) -> torch.cuda.CUDAGraph:
        if (first, n_steps) not in self._graphs:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                state = self.buffer
                for i in range(n_steps):
                    state = self.step(state, first and i == 0)
                self.buffer.copy_(state)
            self._graphs[first, n_steps] = graph
        return self._graphs[first, n_steps]

    def run(self, n_steps: int) -> None:
        """Replays ``n_steps >= STEPS_PER_GRAPH`` steps from ``buffer``."""
        if n_steps < STEPS_PER_GRAPH:
            raise ValueError(f"n_steps must be at least {STEPS_PER_GRAPH}; got {n_steps}")
        self._graph(True, STEPS_PER_GRAPH).replay()
        replays, rest = divmod(n_steps - STEPS_PER_GRAPH, STEPS_PER_GRAPH)
        for _ in range(replays):
            self._graph(False, STEPS_PER_GRAPH).replay()
        if rest:
            self._graph(False, rest).replay()
