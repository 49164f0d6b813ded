"""The plug-in path end to end: ``certify-ports --backend module:Adapter`` on a fake port.

The fake port (``plugin_fake_port.Ddof1Port``) is eggroll_torch with the variance's ddof
changed; nothing is installed. The certification must flag exactly the check that names the bug
and put a reproducing case in the report whose numbers are the two formulas, derived here from
the case's own inputs.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from conformance import cli
from conformance.checks import REGISTRY
from conformance.inputs import zscore
from conformance.tolerances import assert_parity
from plugin_fake_port import Ddof1Port

NAMED = "normalization.population_variance"
UNAFFECTED = "normalization.constant_fitness"


@pytest.fixture(scope="module")
def certified(tmp_path_factory):
    out = tmp_path_factory.mktemp("ports")
    spec = f"{Ddof1Port.__module__}:{Ddof1Port.__name__}"
    code = cli.main(["certify-ports", "--backend", spec, "--check", NAMED, "--check", UNAFFECTED,
                     "--out", str(out), "--quiet"])
    assert code == 1, "a failing check must fail certify-ports"
    return json.loads((out / "fake-ddof1-port-0.0.1.json").read_text()), (out / "fake-ddof1-port-0.0.1.md").read_text()


def test_normalization_population_variance_flagged_on_plugin_port(certified):
    doc, _ = certified
    status = {r["check_id"]: r["status"] for r in doc["results"]}
    assert status == {NAMED: "fail", UNAFFECTED: "pass"}
    assert [f["check_id"] for f in doc["findings"]] == [NAMED]


def test_normalization_population_variance_report_has_reproducing_case(certified):
    doc, markdown = certified
    finding = doc["findings"][0]
    raw = np.asarray(finding["inputs"]["raw"]["values"], np.float32)
    assert raw.size == min(c["raw"].size for c in REGISTRY[NAMED].cases("ci")), "the smallest case is reported"
    (row,) = finding["outputs"]
    assert_parity(row["expected"]["values"], zscore(raw), "report_zscores", what="expected (ddof=0)")
    assert_parity(row["got"]["values"], zscore(raw, ddof=1), "report_zscores", what="got (ddof=1)")
    assert finding["command"].endswith(f"--check {NAMED}")
    assert f"### ❌ `{NAMED}`" in markdown
    assert "expected (JAX reference)" in markdown and "got (port)" in markdown
