"""The tolerance table's comparisons: what each kind lets through, and what its failures say."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conformance.adapters.eggroll_torch import EggrollTorchAdapter
from conformance.checks import REGISTRY
from conformance.runner import run_check
from conformance.tolerances import (
    FLOOR,
    LAWS,
    TOLERANCES,
    assert_parity,
    assert_same_bits,
    assert_tree_parity,
    compare,
    numpy_dtype,
    to_numpy,
    ulp,
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


BF16 = numpy_dtype("bfloat16")


def test_a_dtype_other_than_the_references_fails_whatever_its_values():
    expected = np.array([1.5, -2.25, 0.0], BF16)
    for kind in ("exact", "elementwise", "reduction", "trajectory", "bits"):
        c = compare(expected.astype(np.float32), expected, kind)
        assert not c.ok and c.mismatches == 3
        assert c.message("w") == f"w not close (bfloat16, {kind}): dtype float32, expected bfloat16"
    # The expected dtype is the one the reference recorded, whatever array holds its values.
    c = compare(expected.astype(np.float32), expected.astype(np.float32), "reduction", "bfloat16")
    assert c.message("w").endswith("dtype float32, expected bfloat16")
    assert compare(torch.tensor([1.5, -2.25, 0.0], dtype=torch.bfloat16), expected, "exact").ok
    assert not compare(np.ones(2, np.int64), np.ones(2, np.int32), "exact").ok
    # A law compares with a float64 formula: no dtype to match.
    assert compare(np.float32(2.0), 2.0, "claim_sqrt_n").ok


def test_bfloat16_comes_back_from_torch_as_bfloat16_in_a_copy():
    tensor = torch.tensor([1.5, -0.0, float("nan")], dtype=torch.bfloat16)
    host = to_numpy(tensor)
    assert host.dtype == BF16
    np.testing.assert_array_equal(host.view(np.uint16), tensor.view(torch.int16).numpy().view(np.uint16))
    tensor.add_(1)
    assert host[0] == 1.5
    words = torch.tensor([1, 2**32 - 1], dtype=torch.uint32)
    assert to_numpy(words).dtype == np.uint32 and to_numpy(words)[1] == 2**32 - 1


def test_widened_bfloat16_is_accepted_only_when_declared_and_only_for_bfloat16_values():
    expected = np.array([1.5, -2.25, 0.1], BF16)
    widened = expected.astype(np.float32)
    assert not compare(widened, expected, "reduction").ok
    assert compare(widened, expected, "reduction", widened_bfloat16=True).ok
    assert compare(widened, expected, "bits", widened_bfloat16=True).ok
    rounded_elsewhere = widened.copy()
    rounded_elsewhere[2] = np.float32(0.1)  # within 1 ULP of bfloat16's 0.1, but not a bfloat16 value
    c = compare(rounded_elsewhere, expected, "reduction", widened_bfloat16=True)
    assert not c.ok
    assert c.detail.startswith("dtype float32 widened from bfloat16, but 1 / 3 values are not bfloat16 values")
    assert not compare(widened.astype(np.float64), expected, "reduction", widened_bfloat16=True).ok


class _WidensBfloat16(EggrollTorchAdapter):
    """eggroll_torch handing bfloat16 results back as float32 copies, as some ports do."""

    def out(self, value):
        host = super().out(value)
        return host.astype(np.float32) if host.dtype == BF16 else host


@pytest.mark.parametrize("declared", [False, True])
def test_the_runner_accepts_widened_bfloat16_only_from_an_adapter_that_declares_it(declared, vector_reference):
    adapter = _WidensBfloat16()
    adapter.widens_bfloat16 = declared
    r = run_check(REGISTRY["noise.lora_factors"], adapter, vector_reference, "ci")
    assert r.status == ("pass" if declared else "fail")
    if not declared:
        assert [m for m in r.messages if "bfloat16" in m][0].endswith("dtype float32, expected bfloat16")


def test_ulp_error_is_per_element_down_to_the_kind_floor():
    expected = np.array([2.0, 0.25, 2.0**-10, 0.0], np.float32)
    largest, floor = ulp(2.0, "float32"), 2.0 * FLOOR["reduction"]["float32"]
    assert TOLERANCES["reduction"]["float32"] * ulp(floor, "float32") == 4 * largest

    def off(index, error):
        got = expected.copy()
        got[index] += np.float32(error)
        return compare(got, expected, "reduction")

    # Above the floor an element counts in its own ULPs: 65 of 0.25's fail, though 8 of the largest.
    assert off(1, 64 * ulp(0.25, "float32")).ok
    c = off(1, 65 * ulp(0.25, "float32"))
    assert not c.ok and c.max_ulp == 65 and c.worst_index == (1,)
    # Below the floor elements are compared absolutely: 4 ULP of the largest, not 64.
    assert off(2, 4 * largest).ok and off(3, 4 * largest).ok
    assert not off(2, 5 * largest).ok and not off(3, 5 * largest).ok
    # Measured against the largest element (a floor of 1, as reduction's was), both were within 64 ULP.
    assert max(65 * ulp(0.25, "float32"), 5 * largest) <= 64 * largest


def test_exempt_elements_are_left_out_and_the_rest_still_counts():
    expected = np.array([0.0, 1.0, 2.0], np.float32)
    got = np.array([1e-37, 1.0, np.nextafter(np.float32(2.0), np.float32(3.0))], np.float32)
    assert not compare(got, expected, "exact").ok
    rest = compare(got, expected, "exact", exempt=np.array([True, False, False]))
    assert not rest.ok and rest.mismatches == 1 and rest.worst_index == (2,)
    assert compare(got, expected, "elementwise", exempt=np.array([True, False, False])).ok
