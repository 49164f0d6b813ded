"""random.partial_table: the mantissas the CUDA kernels compute and the table they read the rest from.

The kernels index the table with unsigned 32-bit arithmetic on the random word; here that
arithmetic is replayed in numpy on every mantissa and compared with the full exact table, so a
wrong bound or ordering fails on any host, not only on a GPU.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from eggroll_torch.random import partial_table
from eggroll_torch.random.normal_tables import normal_table


@pytest.mark.parametrize("variant", ["gpu", "cpu"])
def test_random_partial_table_indexing(variant):
    lo, hi, table = partial_table.computed_range(variant, torch.device("cpu"))
    full = normal_table(torch.float32, "cpu", variant).view(torch.int32).numpy()
    word = np.arange(1 << 23, dtype=np.uint32) << np.uint32(9)
    offset = word - np.uint32((hi + 1) << 9)
    from_table = offset < np.uint32(((1 << 23) - 1 - hi + lo) << 9)
    assert table.dtype == torch.float32 and table.numel() == int(from_table.sum())
    if variant == "gpu":
        # erf_inv's w >= 5 tail, counted against XLA:GPU's values in gpu_variant's vectors.
        assert table.numel() == 28_309
    # The ends the table covers are exactly the mantissas the kernel does not compute.
    np.testing.assert_array_equal(from_table, ~partial_table.computed_mask(variant))
    slots = (offset[from_table] >> np.uint32(9)).astype(np.int64)
    np.testing.assert_array_equal(table.view(torch.int32).numpy()[slots], full[from_table])


def test_random_partial_table_rejects_unknown_variant():
    with pytest.raises(ValueError, match="variant must be 'cpu' or 'gpu'"):
        partial_table.computed_mask("tpu")
