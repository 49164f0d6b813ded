"""The trainer catalog (:mod:`broken.trainers`): each one-bug variant of our own ``EggrollTrainer``
fails the trainer check that names its bug, while the unbroken trainer passes that check, so the
failure is the bug's; and the catalog's machinery changes nothing by itself."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from broken.trainers import TRAINER_CATALOG, TrainerMutant
from conformance.adapters.trainer_eggroll_torch import EggrollTorchTrainerLevel
from conformance.trainer_checks import TRAINER_REGISTRY, Observer, run_trainer_check
from conformance.trainer_checks._common import NOISE
from conformance.trainer_checks.probes import noise_digest

# The training-run check runs 64 seeds of the example on the reference and the port: slow.
SLOW_CHECKS = {"trajectory.equivalence"}


def _marked(values, check_of):
    return [pytest.param(v, marks=pytest.mark.slow) if check_of(v) in SLOW_CHECKS else v for v in values]


@pytest.fixture(scope="module")
def control():
    return Observer(EggrollTorchTrainerLevel())


def test_catalog_has_at_least_8_distinct_bugs_each_named_by_a_registered_trainer_check():
    assert len(TRAINER_CATALOG) >= 8
    assert len({m.bug for m in TRAINER_CATALOG}) == len(TRAINER_CATALOG)
    assert [m.__name__ for m in TRAINER_CATALOG if m.flagged_by not in TRAINER_REGISTRY] == []
    names = {m.name for m in TRAINER_CATALOG} | {EggrollTorchTrainerLevel.name}
    assert len(names) == len(TRAINER_CATALOG) + 1


@pytest.mark.parametrize("mutant", _marked(TRAINER_CATALOG, lambda m: m.flagged_by), ids=lambda m: m.__name__)
def test_named_check_flags_the_bug(mutant):
    result = run_trainer_check(TRAINER_REGISTRY[mutant.flagged_by], Observer(mutant()))
    assert result.status == "fail", (f"{mutant.flagged_by} did not flag '{mutant.bug}'",
                                     [(c.case_id, c.status, c.messages[:1]) for c in result.cases])


@pytest.mark.parametrize("check_id", _marked(sorted({m.flagged_by for m in TRAINER_CATALOG}), lambda c: c))
def test_named_check_passes_on_the_unbroken_trainer(control, check_id):
    result = run_trainer_check(TRAINER_REGISTRY[check_id], control)
    assert result.status == "pass", [(c.case_id, c.status, c.messages[:1]) for c in result.cases]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_the_mutants_build_is_the_controls_when_nothing_is_broken(control):
    config = replace(NOISE, lr=0.1)
    expected, got = control.run(config, 2), Observer(TrainerMutant()).run(config, 2)
    assert all(_same(x, y) for want, have in zip(expected.perturbations, got.perturbations) for x, y in zip(want, have))
    assert all(_same(x, y) for x, y in zip(expected.after, got.after))


def test_building_and_running_the_mutants_leaves_other_trainers_alone():
    config = replace(NOISE, lr=0.1)
    before = noise_digest(EggrollTorchTrainerLevel(), config)
    for mutant in TRAINER_CATALOG:
        Observer(mutant()).run(config, 2)
    assert noise_digest(EggrollTorchTrainerLevel(), config) == before


def test_make_conformance_gates_the_trainer_on_the_trainer_checks(monkeypatch):
    """``run`` (make conformance) judges EggrollTrainer through the trainer checks: a regression
    of the trainer's engine fails the gate, with no baseline entry needed."""
    from broken.trainers import FoldedBiasSameSign
    from conformance import gate
    from conformance.adapters import trainer_eggroll_torch
    from conformance.commands.run import TRAINER_LEVEL, trainer_level

    healthy = trainer_level(["signs.*"], {}, quiet=True)
    assert [(r.backend, r.check_id, r.status) for r in healthy] == [(TRAINER_LEVEL, "signs.antithetic_exact", "pass")]
    assert gate.evaluate(healthy, gate.load_baseline()).ok
    monkeypatch.setattr(trainer_eggroll_torch, "EggrollTorchTrainerLevel", FoldedBiasSameSign)
    broken = trainer_level(["signs.*"], {}, quiet=True)
    report = gate.evaluate(broken, gate.load_baseline())
    assert [v.check_id for v in report.violations] == ["signs.antithetic_exact"]
