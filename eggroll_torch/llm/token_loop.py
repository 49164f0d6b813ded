"""The per-token loop of a generation: eagerly, or on CUDA replayed as a CUDA graph.

One token step of a population is a few thousand small kernels (every layer's ops, the noise
products, the key split and the Gumbel draw) whose launches, not their arithmetic, bound the
step. Recorded once per generation and replayed, the same kernels run in the same order on the
same data, so the tokens are those of the eager loop.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from eggroll_torch.fast.graphs import GraphedStep

__all__ = ["STEPS_PER_GRAPH", "run_token_loop"]

# Steps recorded in one graph. A replay must leave the state where the next replay reads it, a
# copy of the whole recurrent state ((N, L, 2 + S, C)); recording two steps halves those copies
# while recording and the eager warm-up stay short.
STEPS_PER_GRAPH = 2


def run_token_loop(step: Callable[[torch.Tensor], torch.Tensor], state: torch.Tensor, n_steps: int, *,
                   cuda_graph: bool = True) -> torch.Tensor:
    """``state = step(state)`` ``n_steps`` times; returns the last state.

    ``state``: the recurrent state ``(N, ...)`` (any strides; it is not written). ``step`` keeps
    everything else it reads and writes (tokens, keys, a device step counter) in tensors that
    outlive the loop, returns a new state of the same shape and dtype, and must not synchronise
    with the host. On CUDA with ``cuda_graph`` and at least ``2 * STEPS_PER_GRAPH`` steps, the
    first ``STEPS_PER_GRAPH`` steps run eagerly (compiling kernels and drawing what is drawn once
    per generation), are then recorded as one CUDA graph and replayed; leftover steps run
    eagerly.
    """
    if not cuda_graph or state.device.type != "cuda" or n_steps < 2 * STEPS_PER_GRAPH:
        for _ in range(n_steps):
            state = step(state)
        return state
    buffer = state.clone(memory_format=torch.contiguous_format)

    def steps():
        current = buffer
        for _ in range(STEPS_PER_GRAPH):
            current = step(current)
        buffer.copy_(current)

    graph = GraphedStep(steps, state.device, warmup=1)
    replays, rest = divmod(n_steps - STEPS_PER_GRAPH, STEPS_PER_GRAPH)
    for _ in range(replays):
        graph()
    state = buffer
    for _ in range(rest):
        state = step(state)
    return state
