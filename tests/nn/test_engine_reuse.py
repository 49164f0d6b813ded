"""What the pair engine keeps with an epoch's draws (views, sigma-scaled noise, plans) is read
afresh against the current parameters: the forward's bias rows follow every update, a tensor
sigma is never kept, and each parameter's gradient is the same whichever others are asked for."""
from __future__ import annotations

import torch

from eggroll_torch.nn import EggrollTrainer

from nn_support import small_net

N = 8


def _trainer():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
    return EggrollTrainer(net, 0.2, 0.05, population_size=N, rank=2, noise_reuse=0, seed=1, solver="adam")


def _bits(t):
    return t.reshape(-1).view(torch.uint8)


def test_bias_rows_follow_the_parameters_across_updates():
    trainer = _trainer()
    x = torch.randn(N, 3)
    for _ in range(3):
        population = trainer.population()
        matrices, vectors = population._pair_noise
        for path, noise in matrices.items():
            bias, bias_noise = vectors[path.replace("weight", "bias")]
            assert noise.bias is bias
            assert torch.equal(_bits(noise.rows[:, 2]), _bits(torch.add(bias, bias_noise)))
            assert torch.equal(_bits(noise.rows[:, 3]), _bits(torch.sub(bias, bias_noise)))
            assert not noise.rows[:, 4:].any()
        trainer.step(lambda pop: -((pop(x) - 1) ** 2).sum(-1))


def test_a_tensor_sigma_gives_the_same_values_and_is_not_kept():
    trainer = _trainer()
    engine, params = trainer._engine, trainer._current_params()
    draws = engine.draw(0, range(N // 2), 0.2)
    fitnesses = torch.linspace(-1.0, 1.0, N)
    kept = set(draws.derived)
    by_tensor = engine.gradients(draws, params, fitnesses, torch.tensor(0.2))
    matrices, vectors = engine.forward_noise(draws, params, torch.tensor(0.2), trainer._linear_biases)
    assert set(draws.derived) == kept
    by_float = engine.gradients(draws, params, fitnesses, 0.2)
    float_matrices, float_vectors = engine.forward_noise(draws, params, 0.2, trainer._linear_biases)
    for path in params:
        assert torch.equal(_bits(by_tensor[path]), _bits(by_float[path]))
    for path in vectors:
        assert torch.equal(_bits(vectors[path][1]), _bits(float_vectors[path][1]))
    for path in matrices:
        assert torch.equal(_bits(matrices[path].rows), _bits(float_matrices[path].rows))


def test_each_gradient_is_the_same_whichever_others_are_asked_for():
    trainer = EggrollTrainer(small_net(), 0.2, 0.05, population_size=N, rank=3, seed=5)
    engine, params = trainer._engine, trainer._current_params()
    draws = engine.draw(0, range(N // 2), 0.2)
    fitnesses = torch.randn(N)
    everything = engine.gradients(draws, params, fitnesses, 0.2)
    for path, param in params.items():
        alone = engine.gradients(draws, {path: param}, fitnesses, 0.2)
        assert torch.equal(_bits(alone[path]), _bits(everything[path])), path
