"""The claims document, tested: verdicts follow from docs/upstream-behaviour.md's facts, computed from the vectors."""
from __future__ import annotations

import pytest

from conformance.report import claims

# Verdicts implied by upstream's documented behaviour (docs/upstream-behaviour.md), not by our implementation.
EXPECTED = {
    "low_rank_shapes": "holds",
    "zscore_formula": "holds",
    "update_formula": "holds",
    "sqrt_n": "holds",
    "alternation": "holds",
    "update_sign": "holds",
    "noise_reuse_zero": "false",
    "noise_reuse_blocks": "holds",
    "group_norm": "holds",
    "optimizer": "false",
}


@pytest.fixture(scope="module")
def verdicts(vector_reference):
    return {c.id: c for c in claims.evaluate(vector_reference, [])}


def test_every_claim_of_the_document_is_evaluated(verdicts):
    assert set(EXPECTED) <= set(verdicts)
    assert all(c.measured for c in verdicts.values())


@pytest.mark.parametrize("claim_id", sorted(EXPECTED))
def test_claim_verdict_matches_upstream_behaviour(claim_id, verdicts):
    c = verdicts[claim_id]
    assert c.verdict == EXPECTED[claim_id], c.measured


def test_noise_reuse_claim_reports_identical_noise_across_epochs(verdicts):
    assert "max abs diff 0" in verdicts["noise_reuse_zero"].measured


def test_optimizer_claim_measures_torch_adamw_against_optax(verdicts):
    text = verdicts["optimizer"].measured
    assert "AdamW (defaults)" in text and "1e-2" in text
