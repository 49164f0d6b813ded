"""``conformance run --jobs N``: checks run in spawned workers give the sequential run's results."""
from __future__ import annotations

import json

import pytest

from conformance import cli, parallel
from conformance.commands.run import execute

CHECKS = ["normalization.*", "signs.*"]


def _rows(outcome):
    # Verdicts, not ULP counts: the worst ULP of normalization.group's generated examples was
    # seen to be 3 in one process and 4 in another, with the same code and the same settings.
    return [(r.backend, r.check_id, r.status, r.n_cases, [(c.case_id, c.status) for c in r.cases])
            for r in outcome.results]


def test_workers_give_the_sequential_results_in_its_order():
    sequential = execute(["eggroll_torch"], check_patterns=CHECKS, report_dir=None, quiet=True)
    spread = execute(["eggroll_torch"], check_patterns=CHECKS, report_dir=None, quiet=True, jobs=2)
    assert len(sequential.results) > 2
    assert _rows(spread) == _rows(sequential)
    assert spread.gate.ok == sequential.gate.ok


def test_the_longest_tasks_go_first_and_untimed_ones_before_them(tmp_path):
    report = tmp_path / "conformance.json"
    report.write_text(json.dumps({"results": [
        {"backend": "b", "check_id": "short", "duration_s": 1.0},
        {"backend": "b", "check_id": "long", "duration_s": 9.0},
    ]}))
    durations = parallel.previous_durations(report)
    assert durations == {("b", "short"): 1.0, ("b", "long"): 9.0}
    assert parallel.previous_durations(tmp_path / "missing.json") == {}
    keys = [("b", "short"), ("b", "new"), ("b", "long"), ("b", "newer")]
    assert parallel.longest_first(keys, durations) == [1, 3, 2, 0]


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_jobs_must_be_a_positive_whole_number(value, capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--jobs", value, "--backend", "eggroll_torch", "--check", "signs.*"])
    assert "--jobs" in capsys.readouterr().err


def test_jobs_below_one_is_refused_before_any_worker_starts():
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        parallel.run(None, ["eggroll_torch"], [], None, "ci", 0)
