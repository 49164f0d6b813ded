"""optim.*: eggroll_torch.optim against optax 0.2.8 run eagerly, step by step.

Leaf arithmetic is reproduced operation for operation, so float32/bfloat16/float16 params,
updates and optimizer states are checked at kind ``elementwise``, and bit-exactly on CPU
(``optim.bit_exact_cpu``); ``clip_by_global_norm`` sums over leaves (kind ``reduction``).
"""
from __future__ import annotations

import jax
import optax
import pytest
import torch

from conformance.tolerances import assert_tree_parity
from eggroll_torch import optim, tree
from parity_support import DEVICES, random_tensor, to_jax

SOLVERS = [
    ("sgd", {}), ("sgd", {"momentum": 0.9}), ("sgd", {"momentum": 0.9, "nesterov": True}),
    ("adam", {}), ("adam", {"b1": 0.8, "b2": 0.99, "eps": 1e-6}), ("adamw", {"b1": 0.9, "b2": 0.999}),
    ("adamw", {"weight_decay": 0.1, "nesterov": True}),
]


def _params(dtype, device="cpu"):
    return {"w": random_tensor(0, (4, 3), dtype, device), "b": random_tensor(1, (3,), dtype, device),
            "n": {"s": random_tensor(2, (2, 2), dtype, device)}}


def _run(t_opt, j_opt, dtype, steps, device="cpu"):
    params = _params(dtype, device)
    jparams = jax.tree.map(to_jax, params)
    t_state, j_state = t_opt.init(params), j_opt.init(jparams)
    for step in range(steps):
        grads = tree.map(lambda p: random_tensor(100 + step, p.shape, dtype, device), params)
        t_updates, t_state = t_opt.update(grads, t_state, params)
        j_updates, j_state = j_opt.update(jax.tree.map(to_jax, grads), j_state, jparams)
        params, jparams = optim.apply_updates(params, t_updates), optax.apply_updates(jparams, j_updates)
    return params, jparams, t_state, j_state


@pytest.mark.parametrize("name, kwargs", SOLVERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_optim_matches_optax(name, kwargs, dtype):
    params, jparams, t_state, j_state = _run(getattr(optim, name)(0.03, **kwargs),
                                             getattr(optax, name)(0.03, **kwargs), dtype, steps=12)
    assert_tree_parity(params, jparams, "elementwise", what=f"{name} params")
    assert_tree_parity(t_state, j_state, "elementwise", what=f"{name} state")


@pytest.mark.parametrize("name, kwargs", [SOLVERS[2], SOLVERS[5]])
def test_optim_bit_exact_cpu(name, kwargs):
    params, jparams, t_state, j_state = _run(getattr(optim, name)(0.03, **kwargs),
                                             getattr(optax, name)(0.03, **kwargs), torch.float32, steps=12)
    assert_tree_parity(params, jparams, "exact", what=f"{name} params")
    assert_tree_parity(t_state, j_state, "exact", what=f"{name} state")


def test_optim_adam_state_layout():
    state = optim.adamw(0.1).init(_params(torch.float32))
    assert isinstance(state[0], optim.ScaleByAdamState) and state[0].count.dtype == torch.int32
    assert isinstance(state[1], optim.EmptyState) and isinstance(state[2], optim.EmptyState)


def test_optim_adamw_mask():
    mask = {"w": True, "b": False, "n": {"s": True}}
    params, jparams, _, _ = _run(optim.adamw(0.03, weight_decay=0.5, mask=mask),
                                 optax.adamw(0.03, weight_decay=0.5, mask=mask), torch.float32, steps=3)
    assert_tree_parity(params, jparams, "elementwise", what="masked adamw")


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_optim_clip_chain(max_norm):
    params, jparams, _, _ = _run(optim.chain(optim.clip_by_global_norm(max_norm), optim.sgd(0.1)),
                                 optax.chain(optax.clip_by_global_norm(max_norm), optax.sgd(0.1)),
                                 torch.float32, steps=3)
    assert_tree_parity(params, jparams, "reduction", what="clipped sgd")


@pytest.mark.parametrize("device", DEVICES)
def test_optim_follows_device(device):
    params, jparams, t_state, _ = _run(optim.adamw(0.03), optax.adamw(0.03), torch.float32, steps=2, device=device)
    assert all(leaf.device.type == device for leaf in tree.leaves((params, t_state)))
    assert_tree_parity(params, jparams, "elementwise")


def test_optim_torch_optimizer_wrapper():
    """A torch.optim class works as a solver (outside the parity guarantee): SGD agrees with sgd."""
    params = _params(torch.float32)
    wrapped = optim.resolve_solver(torch.optim.SGD)(0.1)
    ours = optim.sgd(0.1)
    w_state, o_state = wrapped.init(params), ours.init(params)
    grads = tree.map(lambda p: random_tensor(5, p.shape, torch.float32), params)
    w_updates, _ = wrapped.update(grads, w_state, params)
    o_updates, _ = ours.update(grads, o_state, params)
    assert_tree_parity(w_updates, o_updates, "float32_other_ops", what="torch.optim.SGD updates")


def test_optim_resolve_solver_names():
    assert optim.resolve_solver(None) is optim.sgd and optim.resolve_solver("adamw") is optim.adamw
    with pytest.raises(ValueError, match="solver"):
        optim.resolve_solver("lamb")
    with pytest.raises(TypeError, match="solver"):
        optim.resolve_solver(3)
