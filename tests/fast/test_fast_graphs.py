"""eggroll_torch.fast.GraphedStep: a whole generation recorded once and replayed as a CUDA graph.

The replayed generation must give the same fitnesses and weights as running the same step
eagerly, bit for bit (the same kernels run in the same order), over several generations with
the epoch counter advanced on the device.
"""
from __future__ import annotations

import pytest
import torch

from eggroll_torch import random as es_random
from eggroll_torch.fast import GraphedStep, draw_pair_normals


def _generation(dtype, device):
    """A small ES generation of a linear layer: the bulk draw at a device-side epoch, each
    pair's rank-4 perturbation, fitnesses, and an in-place update."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    weight = (torch.randn(64, 64, generator=gen) / 8).to(device=device, dtype=dtype)
    keys = es_random.split(es_random.key(1, device=device), 1)
    x = torch.randn(16, 64, generator=gen).to(device=device, dtype=dtype)
    factors = torch.empty(1, 16, 128, 4, dtype=dtype, device=device)
    epoch = torch.zeros(1, dtype=torch.int32, device=device)

    def step():
        epoch.add_(1)
        draw_pair_normals(keys, epoch, factors, noise_reuse=1)
        b, a = factors[0, :, :64], factors[0, :, 64:]
        perturbed = weight + 0.05 * a @ b.transpose(1, 2)
        raw = torch.tanh(x @ perturbed.transpose(1, 2)).float().mean((1, 2))
        shaped = (raw - raw.mean()) / raw.std()
        weight.add_(torch.einsum("p,pij->ij", shaped.to(dtype), a @ b.transpose(1, 2)), alpha=0.01)
        return raw

    return weight, step


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
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_graphs_replayed_generation_equals_eager(dtype):
    eager_weight, eager_step = _generation(dtype, "cuda")
    graph_weight, graph_step = _generation(dtype, "cuda")
    graphed = GraphedStep(graph_step, "cuda", warmup=2)
    assert graphed.graphed
    for _ in range(2):  # the warm-up calls ran; the captured one only recorded its kernels
        eager_step()
    for generation in range(4):
        want, got = eager_step(), graphed()
        torch.cuda.synchronize()
        assert torch.equal(got, want), f"fitnesses differ at replayed generation {generation}"
    assert torch.equal(graph_weight, eager_weight), "the weights differ after replays"
