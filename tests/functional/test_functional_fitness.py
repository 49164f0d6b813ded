"""normalization.*: ``convert_fitnesses`` against jax_reference (kind ``reduction``) and the
facts of docs/upstream-behaviour.md checked independently (numpy formulas)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import jax_reference.noiser as jnoiser
from conformance.tolerances import assert_parity
from eggroll_torch import noiser as tnoiser
from parity_support import random_tensor, to_jax

GAUSSIAN = ["eggroll", "open_es", "alteggroll", "sparse"]


def _convert(name, raw, **options):
    jf, jn = jnoiser.all_noisers[name].init_noiser({}, 0.1, 0.1, **options)
    tf, tn = tnoiser.all_noisers[name].init_noiser({}, 0.1, 0.1, **options)
    expected = np.asarray(jnoiser.all_noisers[name].convert_fitnesses(jf, jn, to_jax(raw)))
    return tnoiser.all_noisers[name].convert_fitnesses(tf, tn, raw), expected


@pytest.mark.parametrize("name", GAUSSIAN)
@pytest.mark.parametrize("group_size", [0, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_normalization_zscore(name, group_size, dtype):
    raw = random_tensor(0, (24,), dtype, scale=3.0) + 1
    got, expected = _convert(name, raw, group_size=group_size)
    assert_parity(got, expected, "reduction", what="shaped fitnesses")


def test_normalization_population_variance():
    """ddof=0 variance and the 1e-5 inside the root, derived with numpy in float64."""
    raw = random_tensor(1, (16,), torch.float32)
    got, _ = _convert("eggroll", raw)
    r = raw.double().numpy()
    assert_parity(got, (r - r.mean()) / np.sqrt(r.var() + 1e-5), "fitness_formula", what="z-scores")


def test_normalization_groups_use_global_std():
    raw = random_tensor(2, (12,), torch.float32)
    got, _ = _convert("eggroll", raw, group_size=3)
    r = raw.double().numpy()
    groups = r.reshape(-1, 3)
    expected = ((groups - groups.mean(1, keepdims=True)) / np.sqrt(r.var() + 1e-5)).ravel()
    assert_parity(got, expected, "fitness_formula", what="group z-scores")


def test_normalization_constant_fitness_is_zero():
    got, _ = _convert("eggroll", torch.full((8,), 3.5))
    assert torch.equal(got, torch.zeros(8))


@pytest.mark.parametrize("shape", [(12,), (3, 4)])
def test_normalization_baseline_subtraction(shape):
    raw = random_tensor(3, shape, torch.float32)
    got, expected = _convert("eggrollbs", raw, group_size=4)
    assert got.shape == (4,)
    assert_parity(got, expected, "reduction")
    rows = raw.double().numpy().reshape(-1, 4)
    z = (rows - rows[:, :1]) / (rows.std(1, keepdims=True) + 1e-8)
    z[:, :2] = 0
    assert_parity(got, z.mean(0), "fitness_formula", what="baseline-subtracted scores")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("group_size", [0, 1, 4, 16])
@pytest.mark.parametrize("scale", [1e-4, 1.0, 3e4])
def test_normalization_zscore_host_spread_matches_the_tensor_ops(dtype, group_size, scale):
    """The CPU path that computes sqrt(var + eps) and its reciprocal as numpy scalars gives the
    tensor ops' bits (both are ours; jax_reference parity is the test above)."""
    from eggroll_torch.noiser import _fitness

    for seed in range(25):
        raw = (random_tensor(seed, (64,), dtype, scale=scale) + seed % 3).to(dtype)
        if seed == 0:
            raw = torch.full((64,), 2.5, dtype=dtype)
        got = _fitness._standardize_host_spread(raw, group_size)
        want = _fitness._standardize_ops(raw, group_size)
        assert got.dtype == want.dtype and got.shape == want.shape
        differ = (got != want).nonzero()
        assert differ.numel() == 0, (seed, differ[:5].ravel().tolist(), got[differ[:5]], want[differ[:5]])


def test_normalization_zscore_takes_the_host_spread_only_for_cpu_float32_and_float64(monkeypatch):
    from eggroll_torch.noiser import _fitness

    taken, real = [], _fitness._standardize_host_spread
    monkeypatch.setattr(_fitness, "_standardize_host_spread", lambda *args: taken.append(args[0].dtype) or real(*args))
    for dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        _fitness.standardize_unchecked(random_tensor(0, (8,), dtype), 0)
    _fitness.standardize_unchecked(random_tensor(0, (8,), torch.float32).requires_grad_(), 0)
    assert taken == [torch.float32, torch.float64]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_normalization_rejects_a_non_finite_score_among_finite_ones(bad, dtype):
    from eggroll_torch.validation import check_fitnesses

    for at in (0, 5, 7):
        scores = torch.arange(8, dtype=dtype)
        scores[at] = bad
        with pytest.raises(ValueError, match=f"fitnesses must be finite; found {bad}"):
            check_fitnesses(scores)


def test_normalization_accepts_finite_scores_whose_sum_overflows():
    """The one-reduction finiteness test falls back to the elementwise one when finite scores sum to
    an infinity (or, with both signs, to NaN)."""
    from eggroll_torch.validation import check_fitnesses

    big = torch.finfo(torch.float32).max
    for scores in (torch.full((4,), big), torch.tensor([big, big, -big, -big, big, -big])):
        assert not torch.isfinite(scores.sum())
        assert check_fitnesses(scores) is scores
