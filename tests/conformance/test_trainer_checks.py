"""Trainer-level certification: the checks derived from probe modules pass upstream-faithful
trainers (ours, and a small port written here) and flag each one-bug variant by the check that
names the bug; ``certify-ports`` drives a TrainerAdapter end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conformance import cli, stats
from conformance.adapters.trainer_eggroll_torch import EggrollTorchTrainerLevel
from conformance.trainer_checks import TRAINER_REGISTRY, Observer, run_trainer_check
from conformance.trainer_checks.probes import decode, probe_inputs, probe_module
from trainer_ports import CAUGHT_BY, MiniPort

FAST = sorted(cid for cid in TRAINER_REGISTRY if cid != "trajectory.equivalence")


@pytest.fixture(scope="module", params=[EggrollTorchTrainerLevel, MiniPort], ids=["eggroll_torch", "mini-port"])
def faithful(request):
    return Observer(request.param())


@pytest.mark.parametrize("check_id", FAST)
def test_faithful_trainers_pass(faithful, check_id):
    result = run_trainer_check(TRAINER_REGISTRY[check_id], faithful)
    assert result.status == "pass", [c.messages for c in result.cases]


@pytest.mark.parametrize("adapter", sorted(CAUGHT_BY, key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_each_bug_is_caught_by_the_check_that_names_it(adapter):
    result = run_trainer_check(TRAINER_REGISTRY[CAUGHT_BY[adapter]], Observer(adapter()))
    assert result.status == "fail", [c.messages for c in result.cases]


def test_training_equivalence_holds_for_a_faithful_port_with_its_own_rng():
    result = run_trainer_check(TRAINER_REGISTRY["trajectory.equivalence"], Observer(MiniPort()))
    assert result.status == "pass", result.cases[0].messages
    assert "TOST p=" in result.note


def test_the_probe_reads_a_members_perturbation_exactly():
    import torch

    module = probe_module()
    noise = {name: torch.randn_like(p) for name, p in module.named_parameters()}
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.add_(noise[name])
        observed = decode(module(probe_inputs(1)[0]).numpy())
    for name in ("a.weight", "b.weight", "c.bias"):
        assert np.array_equal(observed[name], noise[name].double().numpy()), name


def test_certify_ports_drives_a_trainer_adapter(tmp_path):
    code = cli.main(["certify-ports", "--backend", "trainer_ports:NoAntithetic", "--check", "signs.*",
                     "--out", str(tmp_path), "--quiet"])
    assert code == 1
    doc = json.loads((tmp_path / "mini-port-0.0.1.json").read_text())
    assert doc["port"]["protocol"] == "trainer"
    assert [(r["check_id"], r["status"]) for r in doc["results"]] == [("signs.antithetic_exact", "fail")]
    assert [f["check_id"] for f in doc["findings"]] == ["signs.antithetic_exact"]
    assert cli.main(["certify-ports", "--backend", "trainer_ports:MiniPort", "--check", "signs.*",
                     "--out", str(tmp_path), "--quiet"]) == 0


@pytest.mark.parametrize("p, df, expected", [(0.975, 10, 2.2281389), (0.95, 15, 1.7530504), (0.995, 3, 5.8409093)])
def test_t_quantiles_match_tables(p, df, expected):
    assert abs(stats.t_quantile(p, df) - expected) < 1e-5


def test_ks_rejects_a_wrong_scale_and_accepts_the_right_one():
    samples = np.random.default_rng(0).normal(0.0, 1.0, 1024)
    assert stats.ks_normal(samples, 0.0, 1.0)[1] > 1e-3
    assert stats.ks_normal(samples, 0.0, 0.7)[1] < 1e-4


def test_ks_p_values_are_calibrated():
    p = np.array([stats.ks_normal(np.random.default_rng(s).normal(0.0, 1.0, 512), 0.0, 1.0)[1] for s in range(400)])
    assert 0.02 < np.mean(p < 0.05) < 0.09


def test_tost_needs_the_interval_inside_the_margin():
    rng = np.random.default_rng(3)
    assert stats.tost(rng.normal(0.0, 0.1, 30), 0.2).equivalent
    assert not stats.tost(rng.normal(0.3, 0.1, 30), 0.2).equivalent
    assert not stats.tost(rng.normal(0.0, 1.0, 4), 0.2).equivalent


class _CopiesTheModule(MiniPort):
    """Trains a copy of the module, leaving the harness's module untouched."""

    def build(self, module, config):
        import copy

        return super().build(copy.deepcopy(module), config)


def test_check_adapter_runs_a_generation_of_a_trainer_adapter(capsys):
    assert cli.main(["check-adapter", "--backend", "trainer_ports:MiniPort"]) == 0
    assert cli.main(["check-adapter", "--backend", f"{__name__}:_CopiesTheModule"]) == 1
    assert "must update the module it was given in place" in capsys.readouterr().out
