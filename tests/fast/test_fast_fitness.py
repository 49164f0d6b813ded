"""normalization.*: eggroll_torch.fast.standardize against jax_reference's EGGROLL fitness shaping."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conformance.tolerances import assert_parity
from eggroll_torch.fast import standardize
from jax_reference.noiser.eggroll import EggRoll


@pytest.mark.parametrize("group_size", [0, 4])
def test_normalization_zscore_matches_reference(group_size):
    raw = np.random.default_rng(3).standard_normal(16).astype(np.float32) * 3 + 1
    frozen, noiser_params = EggRoll.init_noiser({"w": np.zeros((2, 2), np.float32)}, 0.1, 0.1, group_size=group_size)
    expected = EggRoll.convert_fitnesses(frozen, noiser_params, raw)
    assert_parity(standardize(torch.from_numpy(raw), group_size), expected, "reduction")


def test_normalization_constant_fitness_gives_zeros():
    assert torch.equal(standardize(torch.full((6,), 2.5)), torch.zeros(6))


def test_normalization_bad_input_is_rejected():
    with pytest.raises(ValueError, match="1-D"):
        standardize(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="multiple of group_size"):
        standardize(torch.zeros(6), 4)
    with pytest.raises(ValueError, match="group_size"):
        standardize(torch.zeros(6), -1)
