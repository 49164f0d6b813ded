"""The API-contract checks: eggroll_torch keeps upstream's API except the one stated difference."""
from __future__ import annotations

import numpy as np

from conformance.checks import REGISTRY
from conformance.known_differences import stated
from conformance.runner import run_check


def test_eggroll_torch_differs_only_in_writing_into_the_given_dict(torch_adapter, vector_reference):
    for cid in ("api.init_noiser_state", "api.keyword_names", "api.one_member_call"):
        assert run_check(REGISTRY[cid], torch_adapter, vector_reference, "ci").status == "pass", cid
    check = REGISTRY["api.do_updates_contract"]
    case = check.cases("ci")[2]
    outputs = check.compute(torch_adapter, case)
    expected = vector_reference.expected(check, case).outputs
    differing = sorted(k for k in expected if not np.array_equal(outputs[k], expected[k]))
    assert differing == ["do_updates/writes_given_dict"]
    assert outputs["do_updates/writes_given_dict"].tolist() == [0] and expected[differing[0]].tolist() == [1]
    known = stated("eggroll_torch", check.id)
    for name in expected:
        covered = known.covers(case, name, expected[name], outputs[name])
        assert covered.any() == (name == "do_updates/writes_given_dict"), name


def test_the_base_noiser_returns_two_empty_dicts(jax_adapter):
    check = REGISTRY["api.init_noiser_state"]
    case = next(c for c in check.cases("ci") if c.case_id == "noop")
    outputs = check.compute(jax_adapter, case)
    assert outputs["init/frozen"].size == 0 and outputs["init/mutable"].size == 0
    assert outputs["opt_state/count"].tolist() == [-1]
