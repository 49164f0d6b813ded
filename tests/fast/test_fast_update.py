"""update.*: the pair-collapsed, single-matmul update equals upstream's per-member estimate.

The expected values are computed here in float64 straight from upstream's definition,
``(sqrt(N) / N) * sum_n f_n (s_n c A_n) @ B_n.T`` (minus the gradient handed to the optimizer),
every member separately, so the check does not rely on the implementation under test; the
comparison with jax_reference itself is in test_fast_stack.py.
"""
from __future__ import annotations

import math

import pytest
import torch

from eggroll_torch.fast import matrix_sgd_, matrix_step, pair_weights, vector_step


def _expected(factors, fitnesses, scale, in_features):
    total = torch.zeros(factors.shape[2] - in_features, in_features, dtype=torch.float64)
    for n, f in enumerate(fitnesses.double()):
        draw = factors[n // 2].double()
        sign = 1.0 if n % 2 == 0 else -1.0
        total += f * (sign * scale * draw[:, in_features:].T) @ draw[:, :in_features]
    n = fitnesses.shape[0]
    return total * math.sqrt(n) / n


def test_update_single_matmul_equals_per_member_sum():
    gen = torch.Generator().manual_seed(0)
    factors = torch.randn(6, 3, 5 + 4, generator=gen)  # P=6 pairs, rank 3, in 5, out 4
    fitnesses = torch.randn(12, generator=gen)
    scale = 0.3 / math.sqrt(3)
    got = matrix_step(factors, pair_weights(fitnesses, scale), 5)
    torch.testing.assert_close(got.double(), _expected(factors, fitnesses, scale, 5), rtol=1e-5, atol=1e-6)


def test_update_sgd_step_is_weight_minus_lr_times_gradient():
    gen = torch.Generator().manual_seed(1)
    factors = torch.randn(4, 2, 3 + 6, generator=gen)
    weights = pair_weights(torch.randn(8, generator=gen), 0.5)
    weight = torch.randn(6, 3, generator=gen)
    expected = weight + 0.1 * matrix_step(factors, weights, 3)
    torch.testing.assert_close(matrix_sgd_(weight.clone(), factors, weights, 0.1), expected)


def test_update_vector_step_is_the_weighted_noise_sum():
    gen = torch.Generator().manual_seed(2)
    noise = torch.randn(5, 7, generator=gen)
    fitnesses = torch.randn(10, generator=gen)
    got = vector_step(noise, pair_weights(fitnesses, 0.2))
    expected = sum(f * (1 if n % 2 == 0 else -1) * 0.2 * noise[n // 2].double() for n, f in enumerate(fitnesses.double()))
    torch.testing.assert_close(got.double(), expected * math.sqrt(10) / 10, rtol=1e-5, atol=1e-6)


def test_update_odd_population_is_rejected():
    with pytest.raises(ValueError, match="even N"):
        pair_weights(torch.zeros(5), 1.0)
