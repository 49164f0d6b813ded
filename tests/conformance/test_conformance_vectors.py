"""Golden vectors: complete, fresh, small, schema-valid, and enough to check torch without JAX."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from conformance import golden
from conformance.checks import REGISTRY
from conformance.checks.base import Case, Check
from conformance.spec import NoiserConfig, SolverSpec

ROOT = Path(__file__).resolve().parents[2]


def _stored(vectors, check_id: str) -> list[Case]:
    return [Case(case_id, inputs, flags=flags) for case_id, inputs, flags in vectors.stored_cases(check_id)]


def test_every_ci_case_has_a_fresh_vector(vectors):
    missing, stale = [], []
    for cid, check in REGISTRY.items():
        entries = vectors.entries(cid) or {}
        for case in check.cases("ci"):
            entry = entries.get(case.case_id)
            if entry is None:
                missing.append(f"{cid}/{case.case_id}")
            elif entry.fingerprint != case.fingerprint():
                stale.append(f"{cid}/{case.case_id}")
    assert not missing and not stale, f"run 'make conformance-vectors': missing {missing[:5]}, stale {stale[:5]}"


def test_vectors_are_small_and_name_the_jax_stack_and_their_recorder(vectors):
    assert vectors.size_bytes() < 3e6
    for cid in vectors.check_ids():
        doc = vectors.document(cid)
        assert {"jax", "jaxlib", "optax"} <= set(doc["versions"]), cid
        assert doc["recorded_with"]["backend"] in ("upstream", "jax_reference"), cid


def test_stored_inputs_are_the_inputs_the_checks_run(vectors):
    """A port reading only the files gets the harness's cases: same inputs (fingerprint), same flags."""
    for cid, check in REGISTRY.items():
        stored = {c.case_id: c for c in _stored(vectors, cid)}
        for case in check.cases("ci"):
            again = stored[case.case_id]
            assert again.fingerprint() == case.fingerprint() == vectors.entries(cid)[case.case_id].fingerprint, \
                f"{cid}/{case.case_id}"
            assert again.flags == check.case_flags(case), f"{cid}/{case.case_id}"


def test_every_branch_a_check_claims_is_hit_by_a_case_that_says_so(vectors):
    """Each declared branch is some ci case's flag; where the branch can be seen (the clip fired, a
    shape shared across es classes, the params' dtype), the reference's stored outputs confirm it."""
    unclaimed, unhit, undeclared = [], [], []
    for cid, check in REGISTRY.items():
        cases = _stored(vectors, cid)
        carried = {f for c in cases for f in c.flags}
        unclaimed += [f"{cid}:{b}" for b in check.branches if b not in carried]
        if check.branches:
            undeclared += [f"{cid}:{f}" for f in carried - set(check.branches)]
        for case in cases:
            entry = vectors.entries(cid)[case.case_id]
            for flag in case.flags:
                if check.branch_hit(flag, case, entry.outputs) is False:
                    unhit.append(f"{cid}/{case.case_id}:{flag}")
    assert not unclaimed and not unhit and not undeclared, (unclaimed, unhit, undeclared)


def test_the_issue_named_branches_are_declared_and_verifiable(vectors):
    named = {"noiser.eggrollbs": {"clip_fires", "clip_idle"},
             "update.low_precision": {"float16", "state_dtype_differs"},
             "update.batched_equals_plain": {"same_shape_other_class"}}
    for cid, flags in named.items():
        check = REGISTRY[cid]
        assert flags <= set(check.branches), cid
        for case in _stored(vectors, cid):
            for flag in case.flags & flags:
                assert check.branch_hit(flag, case, vectors.entries(cid)[case.case_id].outputs) is True
    # The predicate can say no: the idle case does not clip.
    bs = REGISTRY["noiser.eggrollbs"]
    idle = next(c for c in _stored(vectors, bs.id) if "clip_idle" in c.flags)
    assert bs.branch_hit("clip_fires", idle, vectors.entries(bs.id)[idle.case_id].outputs) is False


def test_notes_describe_every_flag_and_name_each_bug_under_the_flag_that_exposes_it(vectors):
    from conformance.bugs import BUGS

    named = set()
    for cid in vectors.check_ids():
        doc = vectors.document(cid)
        used = {f for c in doc["cases"] for f in c["flags"]}
        assert set(doc["notes"]) == used, cid
        for flag, note in doc["notes"].items():
            for bug in note["bugs"]:
                assert BUGS[bug["name"]].check == cid and BUGS[bug["name"]].flag in (None, flag)
                assert bug["text"] == BUGS[bug["name"]].text
                named.add(bug["name"])
    assert named == set(BUGS), set(BUGS) - named


def test_every_vector_document_validates_and_a_broken_one_does_not(vectors):
    docs = [vectors.document(cid) for cid in vectors.check_ids()]
    assert len(docs) == len(REGISTRY)
    bad = json.loads(json.dumps(docs[0]))
    bad["cases"][0]["outputs"][0]["sha256"] = "not-a-hash"
    with pytest.raises(jsonschema.ValidationError):
        golden.validate(bad)


def test_a_case_whose_inputs_changed_is_reported_stale(vectors):
    check = REGISTRY["normalization.zscore"]
    case = check.cases("ci")[0]
    changed = Case(case.case_id, {**case.inputs, "raw": case["raw"] + 1}, case.requires)
    with pytest.raises(golden.StaleVector, match="make conformance-vectors"):
        vectors.get(check.id, changed)


class _Probe(Check):
    id = "x.y"
    component = "X"
    summary = "a check of the format"

    def cases(self, profile):
        return []


def test_documents_round_trip_bfloat16_and_diff_names_every_change(tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 numpy arrays come from ml_dtypes")
    bf = np.array([1.5, -2.25], dtype=ml_dtypes.bfloat16)
    versions = {"jax": "1", "jaxlib": "1", "optax": "1", "numpy": "1", "python": "3"}
    who = {"backend": "jax_reference", "version": "v", "device": "cpu"}
    c1 = Case("c1", {"config": NoiserConfig(sigma=0.5, solver=SolverSpec.make("adam", mu_dtype="float32")),
                     "params": {"w": bf, "n": np.int32(3)}, "dims": (2, [1.5, None])})
    doc, arrays = golden.build_document(_Probe(), "ci", who, versions,
                                        [(c1, {"out": bf, "ids": np.arange(3, dtype=np.int32)}, {})])
    golden.write_document(tmp_path, doc, arrays)
    store = golden.VectorStore(tmp_path)
    entry = store.entries("x.y")["c1"]
    assert entry.dtypes == {"out": "bfloat16", "ids": "int32"}
    assert doc["cases"][0]["outputs"][0]["dtype"] == "bfloat16" and arrays["c0_o0"].dtype == np.float32
    assert entry.outputs["out"].dtype == bf.dtype  # read back in the dtype the reference produced
    np.testing.assert_array_equal(entry.outputs["out"].astype(np.float32), np.array([1.5, -2.25], np.float32))
    [again] = _stored(store, "x.y")
    assert again.fingerprint() == c1.fingerprint() and again["params"]["w"].dtype == bf.dtype
    assert again.flags == frozenset({"y"})
    assert again["config"] == c1["config"] and again["dims"] == (2, [1.5, None])
    assert doc["notes"] == {"y": {"description": "a check of the format", "bugs": []}}

    c2 = Case("c2", {"x": np.zeros(2, np.float32)})
    new, new_arrays = golden.build_document(
        _Probe(), "ci", who, {**versions, "jax": "2"},
        [(c1, {"out": np.array([1.5, -2.0], np.float32), "ids": np.arange(3, dtype=np.int32)}, {}),
         (c2, {"out": np.zeros(1, np.float32)}, {})])
    lines = golden.diff_document(store.document("x.y"), store.entries("x.y"), new, new_arrays)
    assert "x.y: jax 1 -> 2" in lines
    assert "x.y/c2: added" in lines
    assert any(line.startswith("x.y/c1: outputs out changed (max abs diff 0.25") for line in lines)
    assert not any("ids" in line for line in lines)


def test_inputs_that_cannot_be_stored_as_data_are_refused():
    from conformance import case_data

    with pytest.raises(TypeError, match="cannot store a set"):
        case_data.encode({"s": {1, 2}}, {}, "c0_i")
    with pytest.raises(TypeError, match="dict keys must be strings"):
        case_data.encode({1: 2}, {}, "c0_i")


_TORCH_ONLY = """
import sys
sys.modules["jax"] = None  # importing jax now raises ImportError, as on a machine without it
from conformance.commands.run import execute
out = execute(["jax_reference", "eggroll_torch"], check_patterns={patterns!r}, report_dir=None, quiet=True)
assert "jax_reference" in out.unavailable, out.unavailable
assert out.live_info is None
assert out.gate.ok, [str(v) for v in out.gate.violations]
assert sum(r.status == "pass" for r in out.results) >= len(out.results) - 1, "only the subnormal known difference"
assert all(c.mode == "reference" for r in out.results for c in r.cases), "every case compared with a vector"
assert "jaxlib" not in sys.modules
print(len(out.results), sum(r.n_cases for r in out.results))
"""


def test_torch_side_is_checked_against_vectors_when_jax_is_missing():
    patterns = ["normalization.*", "noise.lora_factors", "keys.tree_order", "update.lowrank",
                "optimizer.adamw_defaults"]
    proc = subprocess.run([sys.executable, "-c", _TORCH_ONLY.format(patterns=patterns)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    checks, cases = map(int, proc.stdout.split())
    assert checks == 12 and cases > 60


@pytest.mark.slow
def test_jax_reference_reproduces_the_recorded_vectors_bit_for_bit(jax_adapter):
    """The vectors come from upstream where it was available: jax_reference re-records them unchanged."""
    proc = subprocess.run([sys.executable, "-m", "conformance", "vectors", "--dry-run", "--source", "jax_reference"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"0 of {len(REGISTRY)} vector documents would change" in proc.stdout, proc.stdout[-3000:]
    assert "prng: random_cpu_jax0102.npz unchanged" in proc.stdout, proc.stdout[-3000:]


def test_vectors_prng_part_refuses_check_filters():
    proc = subprocess.run([sys.executable, "-m", "conformance", "vectors", "--part", "prng", "--check", "keys.*"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "not with --part prng" in proc.stdout, proc.stdout + proc.stderr
