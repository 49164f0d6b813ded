"""The solvers' concatenated form (:mod:`eggroll_torch.optim._flat`), which ``apply_solver`` runs
for a small tree of one dtype: the same new params and solver state as the per-leaf update, bit
for bit, over several steps; and the per-leaf update wherever the concatenated form cannot apply.
"""
from __future__ import annotations

import pytest
import torch

from eggroll_torch import optim, tree
from eggroll_torch.noiser._update import apply_solver
from eggroll_torch.numerics import one_minus_power, safe_increment
from eggroll_torch.optim import _adam, _flat

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]
SOLVERS = [
    pytest.param(optim.adamw, {"b1": 0.9, "b2": 0.999}, id="adamw"),
    pytest.param(optim.adamw, {"weight_decay": 0.0}, id="adamw-no-decay"),
    pytest.param(optim.adam, {"eps_root": 1e-6}, id="adam-eps-root"),
    pytest.param(optim.adam, {"nesterov": True}, id="nadam"),
    pytest.param(optim.sgd, {}, id="sgd"),
    pytest.param(optim.sgd, {"momentum": 0.9}, id="sgd-momentum"),
    pytest.param(optim.sgd, {"momentum": 0.9, "nesterov": True}, id="sgd-nesterov"),
]


def _tree(dtype, single=False):
    gen = torch.Generator().manual_seed(0)

    def leaf(*shape):
        return torch.randn(shape, generator=gen).to(dtype)

    if single:
        return {"w": leaf(7, 5)}
    # Sorted keys differ from insertion order ("10" < "2"), as nest() builds trainer trees.
    return {"2": {"weight": leaf(4, 3), "bias": leaf(4)}, "10": {"weight": leaf(1, 4), "bias": leaf(1)}, "s": leaf()}


def _grads(params, step):
    gen = torch.Generator().manual_seed(100 + step)
    return tree.map(lambda p: torch.randn(p.shape, generator=gen).to(p.dtype), params)


def _assert_same_tree(got, want, what):
    got_leaves, got_def = tree.flatten(got)
    want_leaves, want_def = tree.flatten(want)
    assert got_def == want_def, what
    for i, (g, w) in enumerate(zip(got_leaves, want_leaves)):
        if isinstance(w, torch.Tensor):
            assert g.dtype == w.dtype and g.shape == w.shape, f"{what} leaf {i}"
            assert torch.equal(g.reshape(-1).view(torch.uint8), w.reshape(-1).view(torch.uint8)), \
                f"{what} leaf {i}: bits differ"
        else:
            assert g == w, f"{what} leaf {i}"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("single", [False, True], ids=["tree", "one-leaf"])
@pytest.mark.parametrize("factory, kwargs", SOLVERS)
def test_flat_solver_step_equals_per_leaf_step(factory, kwargs, single, dtype):
    solver = factory(0.03, **kwargs)
    assert _flat.flat_form(solver) is not None
    frozen = {"solver": solver}
    params = _tree(dtype, single)
    assert _flat.FlatLayout.build(params) is not None
    flat_state = {"sigma": 0.2, "opt_state": solver.init(params)}
    leaf_params, leaf_opt_state = params, solver.init(params)
    flat_params = params
    for step in range(6):
        grads = _grads(params, step)
        flat_state, flat_params = apply_solver(frozen, flat_state, flat_params, grads)
        updates, leaf_opt_state = solver.update(grads, leaf_opt_state, leaf_params)
        leaf_params = optim.apply_updates(leaf_params, updates)
        _assert_same_tree(flat_params, leaf_params, f"params after step {step}")
        _assert_same_tree(flat_state["opt_state"], leaf_opt_state, f"solver state after step {step}")


def test_flat_solver_leaves_its_arguments_untouched():
    solver = optim.adamw(0.03)
    params = _tree(torch.float32)
    state = {"sigma": 0.2, "opt_state": solver.init(params)}
    grads = _grads(params, 0)
    inputs = (params, grads, state["opt_state"])
    before = [t.clone() for t in tree.leaves(inputs)]
    apply_solver({"solver": solver}, state, params, grads)
    for old, now in zip(before, tree.leaves(inputs)):
        assert torch.equal(old, now)


@pytest.mark.parametrize("on_host", [True, False], ids=["host", "tensor"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_step_count_and_bias_corrections_equal_the_per_leaf_ones(dtype, on_host):
    decays = (0.9, 0.999, 0.5, 0.9999)
    for count in [*range(0, 3000, 7), 871, 872, 873, 10**5, 2**31 - 2, 2**31 - 1]:
        count = torch.tensor(count, dtype=torch.int32)
        count_inc, corrections = _adam._count_and_corrections(count, decays, dtype, {}, on_host=on_host)
        want_count = safe_increment(count)
        assert count_inc.dtype == want_count.dtype and torch.equal(count_inc, want_count)
        for decay, got in zip(decays, corrections):
            want = one_minus_power(decay, want_count, dtype)
            assert got.dtype == want.dtype and torch.equal(got, want), (decay, int(count))


def test_no_flat_form_where_it_cannot_apply():
    assert _flat.flat_form(optim.adam(0.1, mu_dtype=torch.float32)) is None
    assert _flat.flat_form(optim.adamw(0.1, mask={"a": True})) is None
    assert _flat.flat_form(optim.sgd(0.1, momentum=0.9, accumulator_dtype=torch.float32)) is None
    assert _flat.flat_form(optim.chain(optim.scale(2.0), optim.clip_by_global_norm(1.0))) is None
    mixed = {"a": torch.zeros(3), "b": torch.zeros(3, dtype=torch.float64)}
    assert _flat.FlatLayout.build(mixed) is None
    assert _flat.FlatLayout.build({"a": torch.zeros(_flat.MAX_ELEMENTS + 1)}) is None
    assert _flat.FlatLayout.build({"a": [torch.zeros(3)]}) is None
    assert _flat.FlatLayout.build({"a": torch.zeros(3, requires_grad=True)}) is None
    assert _flat.FlatLayout.build({}) is None


def test_a_state_that_does_not_fit_falls_back_to_the_per_leaf_update():
    solver = optim.adam(0.03)
    params = {"a": torch.ones(3), "b": torch.ones(2)}
    grads = {"a": torch.full((3,), 0.5), "b": torch.full((2,), -0.5)}
    state = solver.init(params)
    # A first moment of another dtype than the params: the per-leaf update handles it.
    scale_state = state[0]._replace(mu={"a": state[0].mu["a"].double(), "b": state[0].mu["b"]})
    state = (scale_state, *state[1:])
    noiser_params = {"sigma": 0.2, "opt_state": state}
    new_state, new_params = apply_solver({"solver": solver}, noiser_params, params, grads)
    updates, want_state = solver.update(grads, state, params)
    _assert_same_tree(new_params, optim.apply_updates(params, updates), "params")
    _assert_same_tree(new_state["opt_state"], want_state, "solver state")
    with pytest.raises(ValueError, match="chain of 2 transformations"):
        apply_solver({"solver": solver}, {"sigma": 0.2, "opt_state": state[:1]}, params, grads)


def test_the_previous_state_is_read_without_a_copy():
    solver = optim.adam(0.03)
    frozen = {"solver": solver}
    params = _tree(torch.float32)
    state = {"sigma": 0.2, "opt_state": solver.init(params)}
    state, params = apply_solver(frozen, state, params, _grads(params, 0))
    layout, _ = _flat.FlatLayout.build(params)
    mu = state["opt_state"][0].mu
    whole = layout.flatten(mu)
    assert whole.data_ptr() == tree.leaves(mu)[0].data_ptr()  # the moments' own memory
    # A tree that merely holds equal values is copied.
    copied = tree.map(torch.clone, mu)
    assert layout.flatten(copied).data_ptr() != whole.data_ptr()
    assert torch.equal(layout.flatten(copied), whole)
