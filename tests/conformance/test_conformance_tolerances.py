"""The tolerance table's comparisons: what each kind lets through, and what its failures say."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conformance.tolerances import (
    LAWS,
    TOLERANCES,
    assert_parity,
    assert_same_bits,
    assert_tree_parity,
    compare,
)

NAN_A, NAN_B = np.array([0x7FC00000, 0x7FC00001], np.uint32).view(np.float32)


def test_exact_equates_what_bits_tells_apart():
    zeros, negative_zeros = np.zeros(3, np.float32), -np.zeros(3, np.float32)
    assert compare(zeros, negative_zeros, "exact").ok
    assert compare(np.array([NAN_A]), np.array([NAN_B]), "exact").ok
    assert not compare(zeros, negative_zeros, "bits").ok
    assert not compare(np.array([NAN_A]), np.array([NAN_B]), "bits").ok
    assert compare(np.array([NAN_A]), np.array([NAN_A]), "bits").ok


def test_bits_reads_torch_and_numpy_alike_and_requires_the_dtype():
    values = np.array([1.5, -0.0, 3.0], np.float32)
    assert_same_bits(torch.from_numpy(values).to(torch.bfloat16), torch.tensor([1.5, -0.0, 3.0], dtype=torch.bfloat16))
    assert_same_bits(torch.from_numpy(values), values)
    with pytest.raises(AssertionError, match="dtype float64, expected float32"):
        assert_same_bits(values.astype(np.float64), values)


def test_bits_failure_names_the_first_differing_element_and_its_bits():
    got = np.array([1.0, 0.0, -0.0], np.float32)
    with pytest.raises(AssertionError) as failure:
        assert_same_bits(got, np.zeros(3, np.float32), "draws")
    assert str(failure.value).startswith("draws not close (float32, bits): 2 / 3 elements differ in their bits")
    assert "worst at index (0,): got 0x3f800000, expected 0x0" in str(failure.value)


def test_ulp_failure_reports_count_errors_and_worst_index():
    expected = np.ones(4, np.float32)
    got = expected.copy()
    got[2] = np.nextafter(np.nextafter(np.nextafter(got[2], 2), 2), 2)
    assert compare(got, expected, "reduction").ok
    message = compare(got, expected, "elementwise").message("out")
    assert message.startswith("out not close (float32, elementwise): 1 / 4 elements over 2 ULP; max ULP error 3")
    assert message.endswith("worst at index (2,)")


def test_shape_mismatch_fails_every_element_and_says_so():
    c = compare(np.zeros((2, 3)), np.zeros((3, 2)), "exact")
    assert not c.ok and c.mismatches == 6
    assert c.message("w") == "w not close (float64, exact): shape (2, 3), expected (3, 2)"


def test_law_bound_is_atol_plus_rtol_and_never_passes_nan():
    bound = LAWS["fitness_formula"]
    expected = np.array([0.0, 2.0, np.inf])
    edge = expected + np.array([bound.atol, bound.atol + bound.rtol * 2.0, 0.0])
    assert compare(edge, expected, "fitness_formula").ok
    assert not compare(edge * (1 + 1e-9), expected, "fitness_formula").ok
    assert not compare(np.array([np.nan]), np.array([np.nan]), "fitness_formula").ok


def test_normwise_law_measures_against_the_scale():
    assert compare(np.array([1e-6]), np.array([0.0]), "claim_formula", scale=0.2).ok
    assert not compare(np.array([3e-6]), np.array([0.0]), "claim_formula", scale=0.2).ok
    # min_scale: 1e-4 of at least 1.
    assert compare(np.array([1e-4]), np.array([0.0]), "group_mean", scale=1e-3).ok
    with pytest.raises(ValueError, match="normwise"):
        compare(1.0, 1.0, "reduction", scale=2.0)


def test_kind_names_are_unique_and_checked():
    assert not set(TOLERANCES) & set(LAWS)
    with pytest.raises(KeyError, match="unknown tolerance kind"):
        compare(1.0, 1.0, "close_enough")


def test_tree_parity_compares_structure_then_leaves():
    tree = {"b": [np.float32(1.0), "relu"], "a": (np.zeros(2, np.float32), 3), "n": None}
    same = {"a": (np.zeros(2, np.float32), 3), "b": [np.float32(1.0), "relu"], "n": None}
    assert len(assert_tree_parity(tree, same, "bits")) == 3
    with pytest.raises(AssertionError, match=r"state: tree structure differs at \['b'\]: list of 2, expected tuple"):
        assert_tree_parity(tree, {**same, "b": (np.float32(1.0), "relu")}, "bits", what="state")
    with pytest.raises(AssertionError, match=r"state\['b'\]\[1\]: 'relu', expected 'tanh'"):
        assert_tree_parity(tree, {**same, "b": [np.float32(1.0), "tanh"]}, "bits", what="state")
    with pytest.raises(AssertionError, match=r"state\['a'\]\[0\] not close \(float32, bits\)"):
        assert_tree_parity(tree, {**same, "a": (-np.zeros(2, np.float32), 3)}, "bits", what="state")
    with pytest.raises(AssertionError, match=r"state\['a'\]\[1\]: dtype int64, expected float64"):
        assert_tree_parity(tree, {**same, "a": (np.zeros(2, np.float32), 3.0)}, "bits", what="state")


def test_assert_parity_returns_the_comparison():
    c = assert_parity(np.ones(3, np.float32), np.ones(3, np.float32), "elementwise")
    assert c.ok and c.max_ulp == 0 and c.total == 3
