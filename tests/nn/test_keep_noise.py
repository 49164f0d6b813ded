"""engine.keep_noise: ``EggrollTrainer(keep_noise=False)`` draws each matrix's noise where it is
used and drops it, giving the kept draws' outputs and updates bit for bit while holding one
matrix's noise at a time.

The reference is the same trainer with ``keep_noise=True`` (itself checked against the
functional layer in ``test_engine.py``); memory is the CPU allocator's
(``benchmarks.measure.allocator_peak_bytes``, from ``torch.profiler``'s allocation events),
compared with the draws' sizes computed here.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.measure import allocator_peak_bytes
from eggroll_torch.models.common import MM_PARAM
from eggroll_torch.nn import EggrollTrainer, FunctionalModule
from eggroll_torch.nn.engine import factor_rows

from nn_support import CUDA, small_net

N = 8


class _Blocks(nn.Module):
    """Pre-LayerNorm residual MLP blocks: the vmap route with noisy LayerNorm leaves."""

    def __init__(self):
        super().__init__()
        self.ln = nn.LayerNorm(6)
        self.fc1, self.fc2, self.head = nn.Linear(6, 12), nn.Linear(12, 6), nn.Linear(6, 3, bias=False)

    def forward(self, x):
        return self.head(x + self.fc2(F.gelu(self.fc1(self.ln(x)))))


class _Recurrent(nn.Module):
    """A GRU (its hidden matrix multiplied at every step) and a packed attention projection."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(6, 6, batch_first=True)
        self.attn = nn.MultiheadAttention(6, 2, batch_first=True)

    def forward(self, x):
        h = self.gru(x)[0]
        return self.attn(h, h, h)[0]


class _Transposed(nn.Module):
    """A weight stored ``(in, out)`` and used as ``x @ W`` (``transformers``' Conv1D)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(6, 5) * 0.3)
        self.bias = nn.Parameter(torch.randn(5))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, 6), self.weight).reshape(*x.shape[:-1], 5)


def _models():
    torch.manual_seed(0)
    return {
        "chain": nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 3)),
        "layer_norm": small_net(),
        "blocks": _Blocks(),
        "recurrent": _Recurrent(),
        "transposed": _Transposed(),
    }


def _trainer(module, keep_noise, **kwargs):
    options = dict(population_size=N, rank=2, noise_reuse=1, seed=5, solver="adam") | kwargs
    return EggrollTrainer(copy.deepcopy(module), 0.1, 0.05, keep_noise=keep_noise, **options)


def _run(trainer, x, epochs=3):
    """Outputs of two calls of every epoch's population (the second reads the same noise) and
    the state after each update."""
    outputs, states = [], []
    for _ in range(epochs):
        population = trainer.population()
        first = population(x)
        outputs += [first, population(x)]
        trainer.update(first.float().flatten(1).mean(1))
        states.append(copy.deepcopy(trainer.state_dict()))
    return outputs, states


def _assert_same_bits(got, want, what):
    assert got.dtype == want.dtype and got.shape == want.shape, what
    differ = got.reshape(-1).view(torch.uint8) != want.reshape(-1).view(torch.uint8)
    assert not differ.any(), f"{what}: {int(differ.sum())} bytes differ"


@pytest.mark.parametrize("noise_reuse", [0, 1])
@pytest.mark.parametrize("name", list(_models()))
def test_keep_noise_false_gives_the_kept_draws_bits(name, noise_reuse):
    module = _models()[name]
    x = torch.randn(N, 3, 4, 5 if name == "layer_norm" else 6)
    kept, redrawn = (_run(_trainer(module, keep, noise_reuse=noise_reuse), x) for keep in (True, False))
    for index, (want, got) in enumerate(zip(kept[0], redrawn[0])):
        _assert_same_bits(got, want, f"{name}: population output {index}")
    for epoch, (want, got) in enumerate(zip(kept[1], redrawn[1])):
        for path in want["params"]:
            _assert_same_bits(got["params"][path], want["params"][path], f"{name}: {path} after epoch {epoch}")


def test_keep_noise_false_population_slices_match_the_whole():
    module = _models()["blocks"]
    x = torch.randn(N, 3, 6)
    whole = _trainer(module, False).population()(x)
    part = _trainer(module, False).population(range(2, 6))(x[2:6])
    _assert_same_bits(part, whole[2:6], "members 2..5 built alone")


def test_keep_noise_false_holds_one_matrix_at_a_time():
    # Four square layers, 32 pairs and few tokens per member: the draws outweigh the activations
    # and the parameters, as in the population sweeps of the benchmarks.
    torch.manual_seed(0)
    width, layers, rank, tokens, members = 64, 4, 8, 4, 64
    module = nn.Sequential(*(m for _ in range(layers) for m in (nn.Linear(width, width, bias=False), nn.Tanh())))
    x = torch.randn(members, tokens, width)
    per_matrix = (rank + factor_rows(rank, "cpu", 0)) * width * (members // 2) * 4

    def fitness(population):
        return population(x).mean((1, 2))

    def peak(keep, run):
        """Peak while a fresh trainer is built and ``run(trainer)`` runs: draws the trainer
        keeps count, as they would on a device."""
        def build_and_run():
            run(_trainer(module, keep, population_size=members, rank=rank, solver="sgd"))

        return allocator_peak_bytes(build_and_run)

    def inference(trainer):
        with torch.no_grad():
            trainer.module(x)

    def forward(trainer):
        trainer.population()(x)

    def generations(trainer):
        for _ in range(2):
            trainer.step(fitness)

    base = peak(False, inference)
    kept_forward, redrawn_forward = peak(True, forward), peak(False, forward)
    assert kept_forward - base >= layers * per_matrix, (kept_forward, base, per_matrix)
    assert redrawn_forward - base <= 1.25 * per_matrix, (redrawn_forward, base, per_matrix)
    kept_steps, redrawn_steps = peak(True, generations), peak(False, generations)
    assert kept_steps - redrawn_steps >= (layers - 1) * per_matrix, (kept_steps, redrawn_steps, per_matrix)


def test_keep_noise_must_be_a_bool_and_needs_the_pair_engine():
    module = small_net()
    before = copy.deepcopy(module.state_dict())
    with pytest.raises(TypeError, match="keep_noise must be True or False"):
        EggrollTrainer(module, 0.1, 0.1, population_size=N, keep_noise=0)
    for options, why in (({"noiser": "open_es"}, "noiser OpenES"), ({"population_size": 7}, "N=7")):
        with pytest.raises(ValueError, match=f"keep_noise=False applies to the pair engine.*{why}"):
            EggrollTrainer(module, 0.1, 0.1, **({"population_size": N} | options), keep_noise=False)
    for path, value in module.state_dict().items():
        assert torch.equal(value, before[path]), f"{path} changed although the constructor raised"
    assert EggrollTrainer(module, 0.1, 0.1, population_size=N).keep_noise is True
    trainer = EggrollTrainer(module, 0.1, 0.1, population_size=N, keep_noise=False)
    assert trainer.keep_noise is False
    with pytest.raises(AttributeError):
        trainer.keep_noise = True


def test_keep_noise_false_rejects_a_functional_module():
    from eggroll_torch import random as es_random
    from eggroll_torch.models import common

    module = FunctionalModule(common.MLP, common.MLP.rand_init(es_random.key(3), 3, 2, [4], True, "relu",
                                                               torch.float32))
    with pytest.raises(ValueError, match="keep_noise=False.*FunctionalModule"):
        EggrollTrainer(module, 0.1, 0.1, population_size=N, keep_noise=False)


@pytest.mark.parametrize("device", [CUDA])
def test_keep_noise_false_graphed_step_on_cuda(device):
    module = _models()["blocks"].to(device=device, dtype=torch.bfloat16)
    x = torch.randn(N, 3, 6, device=device, dtype=torch.bfloat16)

    def fitness(population):
        return population(x).float().mean((1, 2))

    trainers = [_trainer(module, keep) for keep in (True, False)]
    steps = [trainer.graphed_step(fitness) for trainer in trainers]
    assert all(step.graphed for step in steps)
    for epoch in range(3):
        for step in steps:
            step()
        for path, want in trainers[0].module.named_parameters():
            got = dict(trainers[1].module.named_parameters())[path]
            _assert_same_bits(got.detach(), want.detach(), f"{path} after epoch {epoch}")
    assert trainers[1].keep_noise is False and trainers[1]._engine.keep is False
    assert all(trainer.es_classes[path] == MM_PARAM for trainer in trainers
               for path in ("fc1.weight", "fc2.weight", "head.weight"))
