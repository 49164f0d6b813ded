"""The C population LayerNorm (eggroll_torch.nn.member_norm_cpu): each member's rows normalised and
given the member's own weight and bias, at least as accurately as F.layer_norm, and the CPU
population forward runs it for float32."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from conformance.tolerances import assert_parity
from eggroll_torch.nn import EggrollTrainer, member_norm_cpu

pytestmark = pytest.mark.skipif(member_norm_cpu.library() is None,
                                reason="no C compiler here; the population LayerNorm uses torch ops instead")

EPS = 1e-5
# One float32 ulp at 1 (twice the unit roundoff u = 2**-24).
ULP = torch.finfo(torch.float32).eps


def _inputs(members, rows_per_member, width, weight, bias):
    """x ``(members * rows_per_member, width)`` (row 1 constant), and w, w_noise, b, b_noise as
    ``weight``/``bias`` ask: "noisy" (shared and pair noise), "shared" or None."""
    g = torch.Generator().manual_seed(members * 1000 + rows_per_member * 10 + width)
    x = torch.randn(members * rows_per_member, width, generator=g) * 3 + 5
    x[1] = 0.7
    pairs = members // 2

    def param(kind, centre):
        if kind is None:
            return None, None
        shared = centre + 0.5 * torch.randn(width, generator=g)
        return shared, (0.05 * torch.randn(pairs, width, generator=g) if kind == "noisy" else None)

    return (x, *param(weight, 1.0), *param(bias, 0.0))


def _member_values(shared, noise, members, rows_per_member):
    """Each row's parameter ``(rows, width)`` float32, formed as the kernel must: ``w + s * noise``."""
    if shared is None:
        return None
    if noise is None:
        return shared.expand(members * rows_per_member, -1)
    sign = torch.tensor([1.0, -1.0]).repeat(members // 2)[:, None]
    return (shared + sign * noise.repeat_interleave(2, 0)).repeat_interleave(rows_per_member, 0)


def _reference(x, w_m, b_m):
    """(the float64 result rounded to float32, the float64 normalised rows)."""
    wide = x.double()
    centred = wide - wide.mean(-1, keepdim=True)
    normed = centred / torch.sqrt((centred * centred).mean(-1, keepdim=True) + EPS)
    y = normed * (1.0 if w_m is None else w_m.double()) + (0.0 if b_m is None else b_m.double())
    return y.float(), normed


PARAMS = ["noisy", "shared", None]


@pytest.mark.parametrize("members, rows_per_member, width", [(6, 1, 37), (4, 16, 37), (8, 16, 256), (140, 5, 300)],
                         ids=["rows1_width37", "rows16_width37", "rows16_width256", "rows5_width300_threads"])
@pytest.mark.parametrize("bias", PARAMS, ids=lambda k: f"bias_{k}")
@pytest.mark.parametrize("weight", PARAMS, ids=lambda k: f"weight_{k}")
def test_member_norm_cpu_matches_float64_reference(monkeypatch, members, rows_per_member, width, weight, bias):
    # 700 rows of 300 are enough for three threads, whose ranges (rows 233 and 466 on) start
    # mid-member: each range must form its first member's values itself.
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    x, w, w_noise, b, b_noise = _inputs(members, rows_per_member, width, weight, bias)
    got = member_norm_cpu.member_layer_norm_rows(x, rows_per_member, w, w_noise, b, b_noise, EPS)
    w_m = _member_values(w, w_noise, members, rows_per_member)
    b_m = _member_values(b, b_noise, members, rows_per_member)
    want, normed = _reference(x, w_m, b_m)
    # With n the exact normalised value and y = n * w_m + b_m: the kernel rounds n to float32
    # (u|n w_m| once scaled), the product (u|n w_m|) and the sum (u|y|); the reference rounds y
    # once (u|y|). |y| <= |n w_m| + |b_m|, so |got - want| <= 4u|n w_m| + 2u|b_m|
    # = ULP * (2|n w_m| + |b_m|). The double mean and variance are off by ~width * 2**-53
    # relatively, far inside the 1% slack.
    scaled = normed.abs() * (1.0 if w_m is None else w_m.double().abs())
    bound = ULP * (2 * scaled + (0.0 if b_m is None else b_m.double().abs())) * 1.01
    assert got.dtype == torch.float32 and got.shape == x.shape
    error = (got.double() - want.double()).abs()
    assert (error <= bound).all(), f"max error {error.max().item():.3g}, bound there {bound.flatten()[error.argmax()]}"
    # The constant row: variance 0, so exactly the member's bias (or zeros).
    assert torch.equal(got[1], torch.zeros(width) if b_m is None else b_m[1])


def test_member_norm_cpu_is_at_least_as_accurate_as_torch():
    x, w, w_noise, b, b_noise = _inputs(8, 16, 256, "noisy", "noisy")
    w_m, b_m = _member_values(w, w_noise, 8, 16), _member_values(b, b_noise, 8, 16)
    want, _ = _reference(x, w_m, b_m)
    got = member_norm_cpu.member_layer_norm_rows(x, 16, w, w_noise, b, b_noise, EPS)
    torch_result = torch.nn.functional.layer_norm(x, (256,), None, None, EPS) * w_m + b_m
    assert (got - want).abs().max() <= (torch_result - want).abs().max()


def _layer_norm_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 37), nn.LayerNorm(37), nn.Linear(37, 3))
    with torch.no_grad():
        net[1].weight.add_(0.3 * torch.randn(37))
        net[1].bias.add_(0.3 * torch.randn(37))
    return net


def test_member_norm_cpu_runs_in_the_population_forward_and_agrees_with_torch(monkeypatch):
    trainer = EggrollTrainer(_layer_norm_net(), 0.2, 0.05, population_size=8, rank=2, noise_reuse=1, seed=3)
    trainer.epoch = 2
    x = torch.randn(8, 4, 5)
    calls = []
    kernel = member_norm_cpu.member_layer_norm_rows

    def counted(*args):
        calls.append(args)
        return kernel(*args)

    monkeypatch.setattr(member_norm_cpu, "member_layer_norm_rows", counted)
    got = trainer.population()(x)
    assert len(calls) == 1
    flat, rows_per_member, w, w_noise, b, b_noise, _ = calls[0]
    assert flat.shape == (32, 37) and rows_per_member == 4
    assert w_noise is not None and b_noise is not None, "the LayerNorm's weight and bias are perturbed"

    monkeypatch.setattr(member_norm_cpu, "library", lambda: None)
    want = trainer.population()(x)
    assert len(calls) == 1, "without the library the torch ops run"
    # Both LayerNorms are within an ulp or two of exact; the last Linear sums 37 such products.
    assert_parity(got, want, "reduction", what="C kernel vs torch population LayerNorm")


def test_member_norm_cpu_leaves_other_dtypes_to_torch(monkeypatch):
    trainer = EggrollTrainer(_layer_norm_net().double(), 0.2, 0.05, population_size=8, rank=2, seed=3)
    calls = []
    monkeypatch.setattr(member_norm_cpu, "member_layer_norm_rows", lambda *args: calls.append(args))
    out = trainer.population()(torch.randn(8, 4, 5, dtype=torch.float64))
    assert out.dtype == torch.float64 and not calls
