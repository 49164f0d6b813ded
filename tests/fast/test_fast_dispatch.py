"""``below_autograd``: ops skip the autograd layers only where autograd has no part."""
from __future__ import annotations

import contextlib

import torch

from eggroll_torch.fast.dispatch import below_autograd


def test_below_autograd_computes_the_same_values_without_history():
    x = torch.randn(5, 3)
    w = torch.randn(4, 3)
    with below_autograd(x, w):
        inside = torch.nn.functional.linear(x, w).relu()
    assert torch.equal(inside, torch.nn.functional.linear(x, w).relu())
    assert inside.grad_fn is None and not inside.requires_grad


def test_below_autograd_steps_aside_for_autograd_and_transforms():
    leaf = torch.randn(3, requires_grad=True)
    assert isinstance(below_autograd(torch.ones(2), leaf), contextlib.nullcontext)
    with below_autograd(torch.ones(2), leaf):
        assert (leaf * 2).grad_fn is not None
    seen = []

    def under_vmap(row):
        seen.append(isinstance(below_autograd(row), contextlib.nullcontext))
        return row

    torch.vmap(under_vmap)(torch.ones(2, 3))
    assert seen == [True]
    assert not isinstance(below_autograd(torch.ones(2)), contextlib.nullcontext)
