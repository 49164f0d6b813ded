"""Hypothesis differential properties: torch vs the live JAX reference on generated inputs.

``ci`` (default) is derandomized; ``CONFORMANCE_PROFILE=deep`` draws many more examples.
"""
from __future__ import annotations

import os

import pytest

from broken.catalog import DdofOne, PerGroupStd, ThreadNotHalved
from conformance.checks import REGISTRY
from conformance.reference import Reference
from conformance.runner import run_hypothesis

PROFILE = os.environ.get("CONFORMANCE_PROFILE", "ci")
PROPERTY_CHECKS = ("normalization.zscore", "normalization.group", "noise.lora_factors", "forward.do_mm",
                   "update.lowrank")


@pytest.fixture(scope="module")
def live(jax_adapter):
    return Reference(None, jax_adapter)


@pytest.mark.parametrize("check_id", PROPERTY_CHECKS)
def test_torch_matches_the_reference_on_generated_inputs(check_id, torch_adapter, live):
    r = run_hypothesis(REGISTRY[check_id], torch_adapter, live, PROFILE)
    assert r.status == "pass", r.messages
    assert r.examples >= 5


@pytest.mark.parametrize("mutant, check_id", [(DdofOne, "normalization.zscore"), (PerGroupStd, "normalization.group"),
                                              (ThreadNotHalved, "noise.lora_factors")],
                         ids=lambda v: getattr(v, "__name__", v))
def test_generated_inputs_catch_a_broken_backend(mutant, check_id, live):
    r = run_hypothesis(REGISTRY[check_id], mutant(), live, PROFILE)
    assert r.status == "fail"
    assert r.messages and r.messages[0].startswith("falsifying example")
