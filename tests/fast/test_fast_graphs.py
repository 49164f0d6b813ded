"""eggroll_torch.fast.GraphedStep: a whole generation recorded once and replayed as a CUDA graph.

The replayed generation must give the same fitnesses and weights as running the same step
eagerly, bit for bit (the same kernels run in the same order), over several generations with
the epoch counter advanced on the device.
"""
from __future__ import annotations

import pytest
import torch

from eggroll_torch import random as es_random
from eggroll_torch.fast import GraphedStep, LowRankStack, layer_keys, standardize


def _generation(dtype, device):
    gen = torch.Generator(device="cpu").manual_seed(0)
    weights = [(torch.randn(64, 64, generator=gen) / 8).to(device=device, dtype=dtype) for _ in range(3)]
    keys, _ = layer_keys(es_random.key(1, device=device), 3, with_bias=False)
    engine = LowRankStack(weights, keys, sigma=0.05, rank=4, num_members=32, noise_reuse=1)
    x = torch.randn(32, 16, 64, generator=gen).to(device=device, dtype=dtype)
    epoch = torch.zeros(1, dtype=torch.int32, device=device)

    def step():
        epoch.add_(1)
        noise = engine.draw(epoch)
        raw = engine.forward(x, noise, reduce="mean")
        engine.sgd_step_(standardize(raw), noise, 0.01)
        return raw

    return engine, step


def test_graphs_graphed_step_runs_step_on_cpu():
    calls = []
    graphed = GraphedStep(lambda: calls.append(1) or len(calls), "cpu")
    assert not graphed.graphed
    assert graphed() == 1 and graphed() == 2


@pytest.mark.parametrize("warmup", [0, -1, 1.5, True])
def test_graphs_bad_warmup_is_rejected(warmup):
    with pytest.raises(ValueError, match="warmup must be an int >= 1"):
        GraphedStep(lambda: None, "cpu", warmup=warmup)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_graphs_replayed_generation_equals_eager(dtype):
    eager_engine, eager_step = _generation(dtype, "cuda")
    graph_engine, graph_step = _generation(dtype, "cuda")
    graphed = GraphedStep(graph_step, "cuda", warmup=2)
    assert graphed.graphed
    for _ in range(2):  # the warm-up calls ran; the captured one only recorded its kernels
        eager_step()
    for generation in range(4):
        want, got = eager_step(), graphed()
        torch.cuda.synchronize()
        assert torch.equal(got, want), f"fitnesses differ at replayed generation {generation}"
    for index, (a, b) in enumerate(zip(graph_engine.weights, eager_engine.weights)):
        assert torch.equal(a, b), f"weight {index} differs after replays"
