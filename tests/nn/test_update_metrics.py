"""``update_norm`` of a step is the L2 norm of the parameter change, whichever path the solver
took (its concatenated form for a small tree of one dtype, or leaf by leaf), and the new
parameters are written back the same way: a flat step's views are recognized in any order,
and the graphed generation's write keeps the old values when a score was not finite."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from eggroll_torch.noiser._update import apply_solver
from eggroll_torch.nn import EggrollTrainer, metrics, param_writes
from eggroll_torch.optim import _flat, sgd

N = 8


def _net(width: int, dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, width), nn.Tanh(), nn.LayerNorm(width), nn.Linear(width, width), nn.Tanh(),
                         nn.Linear(width, 2)).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("width, flat", [(16, True), (300, False)])
def test_update_norm_is_the_norm_of_the_parameter_change(monkeypatch, dtype, width, flat):
    # 16 wide: 418 elements, the solver's concatenated form; 300 wide: past _flat.MAX_ELEMENTS.
    calls = []
    monkeypatch.setattr(metrics, "_flat_change_norm",
                        lambda *args, real=metrics._flat_change_norm: calls.append(1) or real(*args))
    trainer = EggrollTrainer(_net(width, dtype), 0.1, 0.5, population_size=N, rank=2, seed=3, solver="adam")
    x = torch.randn(N, 5, 4, dtype=dtype)
    for _ in range(2):
        before = {name: p.detach().double().clone() for name, p in trainer.module.named_parameters()}
        got = trainer.step(lambda pop: pop(x).float().mean((1, 2)))["update_norm"]
        change = sum(float((p.detach().double() - before[name]).square().sum())
                     for name, p in trainer.module.named_parameters()) ** 0.5
        assert change > 0
        assert got.dtype == torch.float32
        # float32 accumulation (pairwise within each sum) of at most ~93,000 squares.
        assert abs(float(got) - change) <= 1e-5 * change, (float(got), change)
    assert bool(calls) == flat


def _tree(dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    # Insertion order differs from the layout's sorted order ("10" < "2"), as named_parameters does.
    return {"2": {"weight": torch.randn(4, 3, generator=gen).to(dtype),
                  "bias": torch.randn(4, generator=gen).to(dtype)},
            "10": {"weight": torch.randn(1, 4, generator=gen).to(dtype)}}


def _leaves(tree_):
    return [tree_["2"]["weight"], tree_["2"]["bias"], tree_["10"]["weight"]]


def _flat_step(params):
    solver = sgd(0.5)
    grads = {"2": {"weight": torch.ones(4, 3), "bias": torch.ones(4)}, "10": {"weight": torch.ones(1, 4)}}
    _, new = apply_solver({"solver": solver}, {"opt_state": solver.init(params)}, params, grads)
    return new


def test_whole_of_finds_a_flat_steps_views_in_any_order():
    params = _tree()
    new = _leaves(_flat_step(params))
    found = _flat.whole_of(new)
    assert found is not None
    whole, order = found
    assert sorted(order) == [0, 1, 2]
    assert torch.equal(whole, torch.cat([new[i].reshape(-1) for i in order]))
    assert _flat.whole_of([t.clone() for t in new]) is None
    assert _flat.whole_of(new[:2]) is None


@pytest.mark.parametrize("flat", [True, False])
@pytest.mark.parametrize("finite", [True, False])
def test_write_if_takes_the_new_values_only_when_finite(flat, finite):
    params = _tree()
    new = _leaves(_flat_step(params))
    if not flat:
        new = [t.clone() for t in new]
    targets = [t.clone() for t in _leaves(params)]
    old = [t.clone() for t in targets]
    param_writes.write_if(torch.tensor(finite), targets, new)
    for target, want in zip(targets, new if finite else old):
        assert torch.equal(target, want)
