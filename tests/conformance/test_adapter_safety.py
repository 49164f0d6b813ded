"""Adapter safety: loading plug-ins (module or file), one-line errors with near matches, unknown
capabilities, ``check-adapter``'s probes, ``list --needs``, and where ``run`` writes reports."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from conformance import adapters, cli
from conformance.adapters import base
from conformance.adapters.eggroll_torch import EggrollTorchAdapter
from conformance.checks import REGISTRY, select_checks
from conformance.checks.selection import UnknownCheck
from conformance.commands import check_adapter, run
from conformance.needs import missing_for, needs

ADAPTER_FILE = """
from conformance.adapters.eggroll_torch import EggrollTorchAdapter


class FileAdapter(EggrollTorchAdapter):
    def __init__(self):
        super().__init__("cpu")
        self.name = "from-a-file"
"""


def test_a_plugin_loads_from_a_file_path(tmp_path):
    path = tmp_path / "my_adapter.py"
    path.write_text(ADAPTER_FILE)
    assert adapters.load_plugin(str(path)).name == "from-a-file"
    assert adapters.load_plugin(f"{path}:FileAdapter").name == "from-a-file"


def test_a_file_with_two_adapters_needs_a_name(tmp_path):
    path = tmp_path / "two.py"
    path.write_text(ADAPTER_FILE + "\n\nclass Other(FileAdapter):\n    pass\n")
    with pytest.raises(adapters.AdapterError, match="several Adapter subclasses .*FileAdapter, Other"):
        adapters.load_plugin(str(path))


@pytest.mark.parametrize("spec, error, match", [
    ("eggroll-torch", adapters.AdapterError, "did you mean 'eggroll_torch'"),
    ("conformance.adapters.eggroll_torch:EggrollTorchAdaptor", adapters.AdapterError,
     "has no 'EggrollTorchAdaptor'; did you mean 'EggrollTorchAdapter'"),
    ("/no/such/file.py", adapters.AdapterError, "no such file"),
    ("no_such_package.mod:Adapter", adapters.BackendUnavailable, "cannot import no_such_package"),
])
def test_load_errors_are_one_line_naming_the_adapter(spec, error, match):
    with pytest.raises(error, match=match) as caught:
        adapters.resolve(spec)
    assert str(caught.value).startswith(f"adapter {spec!r}:") and "\n" not in str(caught.value)


def test_a_constructor_that_raises_is_reported_as_the_adapters_fault(tmp_path):
    path = tmp_path / "raising.py"
    path.write_text("from conformance.adapters.base import Adapter\n\n\nclass Raising(Adapter):\n"
                    "    def __init__(self):\n        raise RuntimeError('port\\nnot configured')\n")
    with pytest.raises(adapters.AdapterError, match=r"Raising\(\) raised RuntimeError: port not configured"):
        adapters.load_plugin(str(path))


def test_a_misspelt_capability_is_refused_with_the_intended_name(tmp_path):
    path = tmp_path / "typo.py"
    path.write_text(ADAPTER_FILE + "\n    capabilities = frozenset({'convert_fitness', 'noiser:egroll'})\n")
    with pytest.raises(adapters.AdapterError) as caught:
        adapters.load_plugin(str(path))
    message = str(caught.value)
    assert "did you mean 'convert_fitnesses'" in message and "did you mean 'noiser:eggroll'" in message


def test_known_capabilities_cover_every_check_requirement():
    asked = {c for check in REGISTRY.values() for c in check.requires}
    asked |= {c for check in REGISTRY.values() for case in check.cases("ci") for c in case.requires}
    assert asked <= base.known_capabilities()
    assert base.unknown_capabilities(asked) == []


def test_cli_turns_a_bad_backend_into_exit_2_and_one_line(capsys):
    assert cli.main(["check-adapter", "--backend", "eggroll-torch"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: adapter 'eggroll-torch':") and "\n" not in err


def test_a_mistyped_check_id_names_the_nearest_ids():
    with pytest.raises(UnknownCheck, match="did you mean normalization.zscore"):
        select_checks(["normalisation.zscore"])


def test_list_needs_prints_capabilities_and_operations(capsys):
    assert cli.main(["list", "--needs"]) == 0
    out = capsys.readouterr().out
    assert "normalization.zscore" in out and "operations (through those capabilities): convert_fitnesses" in out


def test_needs_of_an_rng_check_say_how_an_own_rng_port_is_judged():
    need = needs(REGISTRY["signs.antithetic_pair"])
    assert need.capabilities == ("noise",) and "laws only" in need.rng
    lacking = missing_for(REGISTRY["signs.antithetic_pair"], _Declaring(frozenset({base.NOISE})))
    assert any("jax_rng" in line for line in lacking)


class _Declaring(base.Adapter):
    def __init__(self, capabilities):
        self.capabilities = capabilities


class _Aliasing(EggrollTorchAdapter):
    """Returns a view of a buffer it overwrites on the next call, as a port's parameters are."""

    def __init__(self):
        super().__init__("cpu")
        self._buffer = None

    def convert_fitnesses(self, config, raw):
        out = super().convert_fitnesses(config, raw)
        if self._buffer is None or self._buffer.shape != out.shape:
            self._buffer = np.empty_like(out)
        self._buffer[...] = out + np.float32(self._calls())
        return self._buffer

    def _calls(self):
        self.count = getattr(self, "count", 0) + 1
        return self.count


class _Drifting(EggrollTorchAdapter):
    """Carries state between calls: each call adds its call count."""

    def convert_fitnesses(self, config, raw):
        self.count = getattr(self, "count", 0) + 1
        return super().convert_fitnesses(config, raw) + np.float32(self.count)


class _Mutating(EggrollTorchAdapter):
    def convert_fitnesses(self, config, raw):
        out = super().convert_fitnesses(config, raw)
        raw[...] = 0
        return out


class _WrongDtype(EggrollTorchAdapter):
    def convert_fitnesses(self, config, raw):
        return super().convert_fitnesses(config, raw).astype(np.float64)


@pytest.fixture(scope="module")
def reference():
    from conformance.golden import VectorStore
    from conformance.reference import Reference

    return Reference(VectorStore(None), None)


ZSCORE = REGISTRY["normalization.zscore"]


def test_probe_passes_a_sound_adapter(reference):
    found = check_adapter.probe(ZSCORE, EggrollTorchAdapter("cpu"), reference)
    assert found.problems == [] and found.operations == ["convert_fitnesses"]


@pytest.mark.parametrize("adapter, symptom", [
    (_Aliasing(), "aliases the port's state"),
    (_Drifting("cpu"), "two calls on the same inputs disagree"),
    (_Mutating("cpu"), "modified its inputs"),
    (_WrongDtype("cpu"), "dtype float64, the reference's is float32"),
])
def test_probe_flags_an_unsafe_adapter(adapter, symptom, reference):
    found = check_adapter.probe(ZSCORE, adapter, reference)
    assert any(symptom in p for p in found.problems), found.problems


def test_check_adapter_exit_status(tmp_path):
    assert cli.main(["check-adapter", "--backend", "eggroll_torch", "--check", "normalization.*"]) == 0
    path = tmp_path / "drift.py"
    path.write_text("from conformance.adapters.eggroll_torch import EggrollTorchAdapter\nimport numpy as np\n\n\n"
                    "class Drift(EggrollTorchAdapter):\n    def __init__(self):\n        super().__init__('cpu')\n\n"
                    "    def convert_fitnesses(self, config, raw):\n        self.n = getattr(self, 'n', 0) + 1\n"
                    "        return super().convert_fitnesses(config, raw) + np.float32(self.n)\n")
    assert cli.main(["check-adapter", "--backend", str(path), "--check", "normalization.zscore"]) == 1


def test_declared_but_unimplemented_operations_are_problems():
    problems, warnings = check_adapter.declarations(_Declaring(frozenset({base.OPTIMIZER})))
    assert problems == ["declares 'optimizer' but overrides none of optimizer_steps"] and warnings == []


def _run_args(**overrides):
    values = {"no_reports": False, "report_dir": None, "backend": None, "quiet": True} | overrides
    return argparse.Namespace(**values)


@pytest.mark.parametrize("overrides, expected", [
    ({}, "reports"),
    ({"backend": ["eggroll_torch"]}, None),
    ({"backend": ["eggroll_torch"], "report_dir": "out"}, "out"),
    ({"no_reports": True, "report_dir": "out"}, None),
])
def test_run_writes_the_committed_reports_only_for_the_full_run(overrides, expected):
    assert run.report_dir_for(_run_args(**overrides)) == expected


def test_plugin_in_a_package_keeps_its_relative_imports():
    adapter = adapters.load_plugin("conformance/adapters/eggroll_torch.py:EggrollTorchAdapter")
    assert adapter.name == "eggroll_torch"

