"""keys.sorted_path_order: an nn.Module's per-parameter keys are JAX's simple_es_tree_key keys
of the same nested dict, whatever order the modules were registered in."""
from __future__ import annotations

import jax
import numpy as np
import torch
from torch import nn

from conformance.tolerances import assert_parity
from eggroll_torch import random as es_random
from eggroll_torch.nn import EggrollTrainer, nest
from jax_reference.models.common import simple_es_tree_key


class _Unsorted(nn.Module):
    """Registration order differs from sorted order at every level, with the traps of string
    sorting: ``"10" < "2"`` among Sequential indices and ``"a" < "a-x"`` (nested) although
    ``"a-x.w" < "a.w"`` as full dotted strings."""

    def __init__(self):
        super().__init__()
        self.zeta = nn.Linear(2, 2)
        self.seq = nn.Sequential(*[nn.Linear(2, 2, bias=False) for _ in range(12)])
        self.add_module("a-x", nn.Linear(2, 2))
        self.a = nn.Linear(2, 2)
        self.alpha = nn.Parameter(torch.zeros(3))


def _jax_keys(module: nn.Module, es_key: jax.Array) -> dict[str, np.ndarray]:
    """Independent oracle: JAX assigns keys over a nested dict of numpy arrays with these paths."""
    params = nest({path: np.asarray(p.detach()) for path, p in module.named_parameters()})
    scan_map = nest({path: () for path, _ in module.named_parameters()})
    keys = simple_es_tree_key(params, es_key, scan_map)
    flat, _ = jax.tree_util.tree_flatten_with_path(keys)
    return {".".join(entry.key for entry in path): np.asarray(jax.random.key_data(key)) for path, key in flat}


def test_keys_sorted_path_order():
    module = _Unsorted()
    registered = [path for path, _ in module.named_parameters()]
    assert registered != sorted(registered), "the fixture must register out of sorted order"
    es_key = jax.random.fold_in(jax.random.key(0), 1)
    trainer = EggrollTrainer(
        module, 0.1, 0.1, population_size=2,
        es_key=es_random.wrap_key_data(np.asarray(jax.random.key_data(es_key))),
    )
    expected = _jax_keys(module, es_key)
    assert set(trainer.keys) == set(expected)
    for path, key in expected.items():
        assert_parity(trainer.keys[path], key, "exact", what=f"key of {path}")


def test_keys_seed_is_random_key_of_seed():
    module = nn.Linear(3, 2)
    by_seed = EggrollTrainer(module, 0.1, 0.1, population_size=2, seed=7)
    expected = _jax_keys(module, jax.random.key(7))
    for path, key in expected.items():
        assert_parity(by_seed.keys[path], key, "exact", what=f"key of {path}")
