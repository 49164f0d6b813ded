"""Trainer-level verdicts against the hand-written ones (:mod:`conformance.report.verdicts`): the
concordance names real checks and cases, the committed reports agree with it, a disagreement is
caught, and each trainer-level port adapter stays within 40 lines of code."""
from __future__ import annotations

import ast
import io
import tokenize
from importlib import metadata
from pathlib import Path

import pytest

from conformance import cli
from conformance.checks import REGISTRY
from conformance.report import verdicts
from conformance.trainer_checks import TRAINER_REGISTRY

ROOT = Path(__file__).resolve().parents[2]
PORTS_DIR = ROOT / "reports" / "ports"
ADAPTERS = ROOT / "conformance" / "adapters" / "ports"
# distribution, pinned version, trainer-level adapter module and class
PORTS = {
    "torcheggroll": ("0.2.0", "torcheggroll_trainer:TorchEggrollTrainerLevel"),
    "eggroll-trainer": ("0.1.0", "eggroll_trainer_trainer:EggrollTrainerTrainerLevel"),
    "eggroll-es": ("0.2.0", "eggroll_es_trainer:EggrollEsTrainerLevel"),
}
MAX_ADAPTER_LINES = 40


def _evidence():
    for concordance in verdicts.CONCORDANCE.values():
        yield from concordance.observes + concordance.through


def test_concordance_maps_every_trainer_check_to_registered_checks_and_cases():
    assert set(verdicts.CONCORDANCE) == set(TRAINER_REGISTRY)
    for trainer_check, concordance in verdicts.CONCORDANCE.items():
        assert concordance.observes, f"{trainer_check} observes no functional check"
    for evidence in _evidence():
        assert evidence.check in REGISTRY, evidence.check
        known = {case.case_id for case in REGISTRY[evidence.check].cases("ci")}
        assert set(evidence.cases or ()) <= known, (evidence.check, set(evidence.cases) - known)


def test_every_functional_check_is_observed_or_declared_unobservable():
    mapped = {evidence.check for evidence in _evidence()}
    assert not mapped & set(verdicts.NO_COUNTERPART), mapped & set(verdicts.NO_COUNTERPART)
    assert mapped | set(verdicts.NO_COUNTERPART) == set(REGISTRY)


def test_explanations_name_trainer_checks_and_verdicts():
    for (_, check), explained in verdicts.EXPLAINED.items():
        assert check in TRAINER_REGISTRY
        assert explained.trainer != explained.expected
        assert {explained.trainer, explained.expected} <= set(verdicts.ICON)
    assert {check for _, check in verdicts.CAUSES} <= set(TRAINER_REGISTRY)


@pytest.fixture(scope="module")
def committed():
    return {p.port: p for p in verdicts.evaluate(PORTS_DIR)}


@pytest.mark.parametrize("port", sorted(PORTS))
def test_committed_reports_agree_but_for_the_explained(committed, port):
    assert port in committed, f"reports/ports holds no pair of {port} reports"
    found = committed[port]
    assert found.version == PORTS[port][0]
    assert [v.check for v in found.verdicts] == list(verdicts.CONCORDANCE)
    assert [(v.check, v.trainer, v.expected) for v in found.verdicts if v.agreement == "disagree"] == []
    explained = {v.check for v in found.verdicts if v.agreement == "explained"}
    assert explained == {check for name, check in verdicts.EXPLAINED if name == port}, "stale or missing explanation"
    for v in found.verdicts:
        if (port, v.check) in verdicts.CAUSES:
            assert (v.agreement, v.trainer) == ("agree", "fail"), v


def test_compatibility_md_shows_the_committed_verdicts(committed):
    section = "\n".join(verdicts.render(list(committed.values())))
    assert section in (ROOT / "reports" / "COMPATIBILITY.md").read_text()


# ---- the rule, on synthetic reports -------------------------------------------------------------
def _row(check_id: str, status: str, cases: dict | None = None, laws: dict | None = None) -> dict:
    cases = cases or {"case": status}
    return {"check_id": check_id, "status": status, "note": f"{check_id} {status}", "laws": laws,
            "cases": [{"case_id": case, "status": s, "messages": [] if s == "pass" else [f"{case} {s}"]}
                      for case, s in cases.items()]}


def _reports(port: str = "some-port", trainer: dict | None = None, functional: dict | None = None):
    """A trainer-level and a hand-written report of ``port`` where everything passes, but for the
    ``{check id: row}`` given."""
    trainer_rows = {cid: _row(cid, "pass") for cid in TRAINER_REGISTRY} | (trainer or {})
    functional_rows = {cid: _row(cid, "pass", {c.case_id: "pass" for c in REGISTRY[cid].cases("ci")})
                       for cid in REGISTRY} | (functional or {})
    return ({"port": {"name": port + verdicts.TRAINER_SUFFIX}, "results": list(trainer_rows.values())},
            {"port": {"name": port}, "results": list(functional_rows.values())})


def _by_check(trainer=None, functional=None, port="some-port") -> dict:
    return {v.check: v for v in verdicts.compare(*_reports(port, trainer, functional))}


def test_all_passing_reports_agree():
    assert {v.agreement for v in _by_check().values()} == {"agree"}


def test_a_failing_functional_check_under_a_passing_trainer_check_is_a_disagreement():
    found = _by_check(functional={"update.lowrank": _row("update.lowrank", "fail")})
    observing = {check for check, c in verdicts.CONCORDANCE.items()
                 if any(e.check == "update.lowrank" for e in c.observes + c.through)}
    assert {check for check, v in found.items() if v.agreement == "disagree"} == observing
    assert (found["update.observed_noise"].trainer, found["update.observed_noise"].expected) == ("pass", "fail")
    assert "update.lowrank" in found["update.observed_noise"].reason


def test_a_failing_trainer_check_over_passing_functional_checks_is_a_disagreement():
    found = _by_check(trainer={"noise.member_rank": _row("noise.member_rank", "fail")})
    assert (found["noise.member_rank"].agreement, found["noise.member_rank"].expected) == ("disagree", "pass")


def test_an_explanation_covers_only_its_declared_verdicts():
    unrun = {cid: _row(cid, "skip") for cid in ("signs.antithetic_pair", "signs.alternation")}
    declared = verdicts.EXPLAINED[("eggroll-es", "signs.antithetic_exact")]
    assert (declared.trainer, declared.expected) == ("pass", "not run")
    assert _by_check(functional=unrun, port="eggroll-es")["signs.antithetic_exact"].agreement == "explained"
    failing = {"signs.antithetic_exact": _row("signs.antithetic_exact", "fail")}
    assert _by_check(failing, unrun, port="eggroll-es")["signs.antithetic_exact"].agreement == "disagree"
    assert _by_check(functional=unrun, port="other-port")["signs.antithetic_exact"].agreement == "disagree"


def test_an_unrun_observed_check_outranks_a_failing_one_it_goes_through():
    found = _by_check(trainer={"normalization.observed_group": _row("normalization.observed_group", "skip")},
                      functional={"normalization.group": _row("normalization.group", "skip"),
                                  "update.lowrank": _row("update.lowrank", "fail")})
    assert (found["normalization.observed_group"].expected, found["normalization.observed_group"].agreement) == \
        ("not run", "agree")


def test_an_unrun_check_gone_through_leaves_the_expectation_a_pass():
    found = _by_check(functional={"update.ascent_sign": _row("update.ascent_sign", "skip")})
    assert found["update.observed_noise"].expected == "pass"
    assert "`update.ascent_sign` not run" in found["update.observed_noise"].evidence


def test_own_rng_laws_decide_over_values_and_unexercised_cases_are_ignored():
    laws = _row("noise.full_rank", "pass", {"5-f32": "pass"})
    clipped = _row("noise.lora_factors", "fail", {"4x3-r1": "pass", "4x3-r8": "fail"})
    found = _by_check(functional={"noise.full_rank": _row("noise.full_rank", "fail", laws=laws),
                                  "noise.lora_factors": clipped})
    assert found["noise.full_rank_normal"].expected == "pass"
    assert found["noise.member_rank"].expected == "pass"


# ---- the adapters ---------------------------------------------------------------------------------
def code_lines(source: str) -> int:
    """Lines holding code: every line a token other than a comment spans, less the lines of the
    module's, classes' and functions' docstrings (found with ``ast``); blank lines hold no token."""
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    layout = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER,
              tokenize.ENCODING}
    lines = set()
    for token in tokenize.tokenize(io.BytesIO(source.encode()).readline):
        if token.type not in layout:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstrings)


def test_code_lines_skip_docstrings_comments_and_blank_lines():
    source = '"""Module\n\ndocstring."""\nimport os  # why\n\n# a comment\n\n\ndef f(x):\n    """Doc."""\n' \
             '    return (x +\n            1)\n'
    assert code_lines(source) == 4


@pytest.mark.parametrize("port", sorted(PORTS))
def test_trainer_level_adapter_is_at_most_40_lines_of_code(port):
    module = PORTS[port][1].split(":")[0]
    source = (ADAPTERS / f"{module}.py").read_text()
    assert ast.get_docstring(ast.parse(source)), f"{module} has no module docstring"
    assert code_lines(source) <= MAX_ADAPTER_LINES


# ---- both adapters live -------------------------------------------------------------------------
def _certify_both(port: str, out: Path) -> verdicts.PortVerdicts:
    version, adapter = PORTS[port]
    try:
        installed = metadata.version(port)
    except metadata.PackageNotFoundError:
        installed = None
    if installed != version:
        pytest.skip(f"{port}=={version} not installed; `make certify-ports` installs it")
    common = ["--out", str(out), "--report-only", "--quiet"]
    assert cli.main(["certify-ports", "--port", port, "--no-install", *common]) == 0
    assert cli.main(["certify-ports", "--backend", f"conformance.adapters.ports.{adapter}", *common]) == 0
    (found,) = verdicts.evaluate(out)
    return found


def _agreements(port_verdicts: verdicts.PortVerdicts) -> list[tuple]:
    return [(v.check, v.trainer, v.expected, v.agreement) for v in port_verdicts.verdicts]


def _live(port: str, out: Path, committed: dict) -> None:
    assert _agreements(_certify_both(port, out)) == _agreements(committed[port])


def test_eggroll_es_certified_live_both_ways_agrees_as_committed(tmp_path, committed):
    _live("eggroll-es", tmp_path, committed)


@pytest.mark.slow
@pytest.mark.parametrize("port", ["torcheggroll", "eggroll-trainer"])
def test_port_certified_live_both_ways_agrees_as_committed(tmp_path, committed, port):
    _live(port, tmp_path, committed)
