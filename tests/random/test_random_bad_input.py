"""Bad input to eggroll_torch.random raises a clear error before doing anything."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import eggroll_torch.random as jr


@pytest.mark.parametrize("keys, error", [
    (np.zeros(2, np.uint32), TypeError),
    (torch.zeros(2, dtype=torch.int64), TypeError),
    (torch.zeros(3, dtype=torch.int32).to(torch.uint32), TypeError),
])
def test_random_bad_keys(keys, error):
    with pytest.raises(error, match="keys"):
        jr.normal(keys, (3,))


@pytest.mark.parametrize("seed, error", [(2**64, ValueError), (1.5, TypeError), (True, TypeError),
                                         (torch.tensor([1, 2]), TypeError)])
def test_random_bad_seed(seed, error):
    with pytest.raises(error, match="seed"):
        jr.key(seed)


@pytest.mark.parametrize("data, error", [(-1, ValueError), (2**32, ValueError), (1.0, TypeError),
                                         (torch.tensor([0.5]), TypeError)])
def test_random_bad_fold_in_data(data, error):
    with pytest.raises(error, match="data"):
        jr.fold_in(jr.key(0), data)


def test_random_bad_wrap_key_data():
    with pytest.raises(TypeError, match="uint32"):
        jr.wrap_key_data(np.zeros((4, 2), np.int64))
    with pytest.raises(TypeError, match="shape"):
        jr.wrap_key_data(np.zeros((4, 3), np.uint32))


@pytest.mark.parametrize("call", [
    lambda k: jr.split(k, -1),
    lambda k: jr.normal(k, (2, -1)),
    lambda k: jr.normal(k, (3,), torch.int32),
    lambda k: jr.normal(k, (3,), variant="tpu"),
    lambda k: jr.normal(k, (3,), torch.float64, variant="gpu"),
    lambda k: jr.bits(k, (3,), torch.int32),
    lambda k: jr.uniform(k, (3,), torch.float32, torch.zeros(4), 1.0),
])
def test_random_bad_arguments(call):
    with pytest.raises(ValueError):
        call(jr.key(0))


def test_random_bad_flag_values():
    with pytest.raises(TypeError, match="partitionable"):
        jr.split(jr.key(0), 2, partitionable="yes")
    with pytest.raises(TypeError, match="threefry_partitionable"):
        jr.set_threefry_partitionable(1)
    with pytest.raises(ValueError, match="backend"):
        jr.set_backend("fast")
