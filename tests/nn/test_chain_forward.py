"""The pair population's forward without vmap (``population._chain_forward``): for a plain
``nn.Sequential`` of ``nn.Linear`` layers and elementwise activations it gives the vmap
forward's outputs bit for bit, and anything else runs the vmap forward."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from eggroll_torch.nn import EXCLUDED, EggrollTrainer
from eggroll_torch.nn import population as population_module

N = 8


def _trainer(module, **kwargs):
    options = dict(population_size=N, rank=3, noise_reuse=1, seed=3) | kwargs
    trainer = EggrollTrainer(module, 0.2, 0.05, **options)
    trainer.epoch = 2
    return trainer


def _mlp(dtype=torch.float32, bias=True):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 16, bias=bias), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                         nn.Linear(16, 1)).to(dtype)


def _activations():
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Linear(5, 13), nn.Tanh(),
        nn.Sequential(nn.Linear(13, 13, bias=False), nn.GELU(approximate="tanh"), nn.SiLU()),
        nn.Sigmoid(), nn.Linear(13, 11), nn.LeakyReLU(0.1), nn.ELU(), nn.Softplus(), nn.Identity(), nn.GELU(),
        nn.Linear(11, 4),
    )


def _both(monkeypatch, population, *args, **kwargs):
    """(chain output, vmap output), and whether the chain forward ran."""
    ran = []
    chain = population_module._chain_forward

    def spy(*a):
        out = chain(*a)
        ran.append(out is not None)
        return out

    monkeypatch.setattr(population_module, "_chain_forward", spy)
    direct = population(*args, **kwargs)
    monkeypatch.setattr(population_module, "_chain_forward", lambda *a: None)
    reference = population(*args, **kwargs)
    monkeypatch.setattr(population_module, "_chain_forward", chain)
    return direct, reference, any(ran)


def _assert_bits(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    assert torch.equal(got.reshape(-1).view(torch.uint8), want.reshape(-1).view(torch.uint8))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize("shape, in_dims", [((N, 3), 0), ((N, 4, 3), 0), ((4, N, 3), 1), ((5, 3), None)],
                         ids=["rows", "tokens", "axis-1", "shared"])
def test_chain_forward_equals_vmap(monkeypatch, dtype, shape, in_dims):
    trainer = _trainer(_mlp(dtype))
    x = torch.randn(shape).to(dtype)
    direct, reference, ran = _both(monkeypatch, trainer.population(), x, in_dims=in_dims)
    assert ran
    _assert_bits(direct, reference)


@pytest.mark.parametrize("kwargs", [{}, {"freeze_nonlora": True}, {"es_classes": {"0.bias": EXCLUDED}}],
                         ids=["noisy-biases", "frozen-biases", "one-shared-bias"])
def test_chain_forward_with_nested_layers_and_activations(monkeypatch, kwargs):
    trainer = _trainer(_activations(), **kwargs)
    x = torch.randn(N, 2, 5)
    direct, reference, ran = _both(monkeypatch, trainer.population(), x)
    assert ran
    _assert_bits(direct, reference)


def test_chain_forward_for_a_slice_of_pairs_and_without_biases(monkeypatch):
    trainer = _trainer(_mlp(bias=False))
    x = torch.randn(4, 3)
    direct, reference, ran = _both(monkeypatch, trainer.population(range(2, 6)), x)
    assert ran
    _assert_bits(direct, reference)


def test_steps_through_the_chain_forward_equal_steps_through_vmap(monkeypatch):
    x = torch.randn(N, 3)

    def fitness(population):
        return -((population(x)[:, 0] - 2) ** 2)

    chained, vmapped = _trainer(_mlp()), _trainer(_mlp())
    for _ in range(3):
        chained.step(fitness)
    monkeypatch.setattr(population_module, "_chain_forward", lambda *a: None)
    for _ in range(3):
        vmapped.step(fitness)
    for (path, got), want in zip(chained.module.named_parameters(), vmapped.module.parameters()):
        _assert_bits(got.detach(), want.detach())


def _with_hook(module):
    calls = []
    module[1].register_forward_hook(lambda *args: calls.append(1))
    return module, calls


@pytest.mark.parametrize("case", ["hook", "layer-norm", "unperturbed-weight", "integer-input", "wrong-width"])
def test_anything_else_runs_the_vmap_forward(monkeypatch, case):
    calls = None
    module, x, kwargs = _mlp(), torch.randn(N, 3), {}
    if case == "hook":
        module, calls = _with_hook(module)
    elif case == "layer-norm":
        module = nn.Sequential(nn.Linear(3, 6), nn.LayerNorm(6), nn.Linear(6, 1))
    elif case == "unperturbed-weight":
        kwargs = {"es_classes": {"2.weight": EXCLUDED}}
    elif case == "integer-input":
        x = torch.ones(N, 3, dtype=torch.int64)
    trainer = _trainer(module, **kwargs)
    if case == "wrong-width":
        x = torch.randn(N, 4)
    population = trainer.population()
    matrices, vectors = population._pair_noise
    x_dim = None if x.ndim == 1 else 0
    assert population_module._chain_forward(module, population._shared, matrices, vectors, x, x_dim, N) is None
    if case in ("integer-input", "wrong-width"):
        with pytest.raises((RuntimeError, TypeError, ValueError)):
            population(x)
        return
    direct, reference, ran = _both(monkeypatch, population, x)
    assert not ran
    _assert_bits(direct, reference)
    if calls is not None:
        assert calls, "the hook must run"
