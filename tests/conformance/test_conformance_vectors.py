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
from conformance.checks.base import Case

ROOT = Path(__file__).resolve().parents[2]


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


def test_vectors_are_small_and_name_the_jax_stack(vectors):
    assert vectors.size_bytes() < 3e6
    for cid in vectors.check_ids():
        doc = vectors.document(cid)
        assert {"jax", "jaxlib", "optax"} <= set(doc["versions"]), cid
        assert doc["recorded_with"]["backend"] == "jax_reference"


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


def test_documents_round_trip_bfloat16_and_diff_names_every_change(tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 numpy arrays come from ml_dtypes")
    bf = np.array([1.5, -2.25], dtype=ml_dtypes.bfloat16)
    versions = {"jax": "1", "jaxlib": "1", "optax": "1", "numpy": "1", "python": "3"}
    who = {"backend": "jax_reference", "version": "v", "device": "cpu"}
    doc, arrays = golden.build_document("x.y", "ci", who, versions,
                                        [("c1", "0" * 64, {"out": bf, "ids": np.arange(3, dtype=np.int32)}, {})])
    golden.write_document(tmp_path, doc, arrays)
    store = golden.VectorStore(tmp_path)
    entry = store.entries("x.y")["c1"]
    assert entry.dtypes == {"out": "bfloat16", "ids": "int32"}
    assert doc["cases"][0]["outputs"][0]["dtype"] == "bfloat16" and arrays["c0_o0"].dtype == np.float32
    assert entry.outputs["out"].dtype == bf.dtype  # read back in the dtype the reference produced
    np.testing.assert_array_equal(entry.outputs["out"].astype(np.float32), np.array([1.5, -2.25], np.float32))

    new, new_arrays = golden.build_document(
        "x.y", "ci", who, {**versions, "jax": "2"},
        [("c1", "0" * 64, {"out": np.array([1.5, -2.0], np.float32), "ids": np.arange(3, dtype=np.int32)}, {}),
         ("c2", "1" * 64, {"out": np.zeros(1, np.float32)}, {})])
    lines = golden.diff_document(store.document("x.y"), store.entries("x.y"), new, new_arrays)
    assert "x.y: jax 1 -> 2" in lines
    assert "x.y/c2: added" in lines
    assert any(line.startswith("x.y/c1: outputs out changed (max abs diff 0.25") for line in lines)
    assert not any("ids" in line for line in lines)


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
def test_vectors_match_a_fresh_recording_from_jax_reference(jax_adapter):
    proc = subprocess.run([sys.executable, "-m", "conformance", "vectors", "--dry-run"], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"0 of {len(REGISTRY)} vector documents would change" in proc.stdout, proc.stdout[-3000:]
    assert "prng: random_cpu_jax0102.npz unchanged" in proc.stdout, proc.stdout[-3000:]


def test_vectors_prng_part_refuses_check_filters():
    proc = subprocess.run([sys.executable, "-m", "conformance", "vectors", "--part", "prng", "--check", "keys.*"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "add --part checks" in proc.stdout, proc.stdout + proc.stderr
