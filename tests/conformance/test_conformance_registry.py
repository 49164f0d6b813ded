"""Registry completeness: every upstream behaviour has a check, every check covers a behaviour."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from conformance.checks import REGISTRY
from conformance.components import COMPONENTS, EXEMPT, UPSTREAM_BEHAVIOURS
from conformance.spec import NOISERS

UPSTREAM_MD = Path(__file__).resolve().parents[2] / "docs" / "upstream-behaviour.md"
# The check ids the conformance design names as its core.
CORE_IDS = (
    "normalization.zscore", "normalization.group", "normalization.constant_fitness", "signs.antithetic_pair",
    "noise.reuse_blocks", "noise.reuse_zero_freezes", "noise.lora_factors", "noise.full_rank", "keys.tree_order",
    "keys.scan_split", "forward.do_mm", "forward.do_Tmm", "forward.noisy_standard", "update.lowrank", "update.full",
    "update.scale_sqrt_n", "update.batched_equals_plain", "optimizer.sgd", "optimizer.adam",
    "optimizer.adamw_defaults", "trajectory.mlp_e2e",
)
OTHER_NOISERS = tuple(name for name in NOISERS if name != "eggroll")


def _mapped() -> set[str]:
    return {cid for behaviours in UPSTREAM_BEHAVIOURS.values() for ids in behaviours.values() for cid in ids}


def test_core_check_ids_and_one_check_per_other_noiser_exist():
    missing = [c for c in CORE_IDS + tuple(f"noiser.{n}" for n in OTHER_NOISERS) if c not in REGISTRY]
    assert not missing, f"core checks are missing: {missing}"


@pytest.mark.parametrize("package", ["eggroll_torch.noiser", "jax_reference.noiser"])
def test_each_library_registers_the_one_noiser_list(package):
    registry = importlib.import_module(package).all_noisers
    assert list(registry) == list(NOISERS)
    assert {name: (cls.__module__.rsplit(".", 1)[1], cls.__name__) for name, cls in registry.items()} == NOISERS


def test_every_mapped_check_id_is_registered():
    unknown = sorted(_mapped() - set(REGISTRY))
    assert not unknown, f"components.py maps behaviours to unregistered checks: {unknown}"


def test_every_registered_check_covers_an_upstream_behaviour():
    orphans = sorted(set(REGISTRY) - _mapped())
    assert not orphans, f"checks not mapped to any upstream-behaviour.md behaviour in components.py: {orphans}"


def test_every_upstream_behaviour_has_a_check_or_an_exemption():
    empty = [(section, b) for section, behaviours in UPSTREAM_BEHAVIOURS.items() for b, ids in behaviours.items()
             if not ids]
    bare_sections = [s for s, behaviours in UPSTREAM_BEHAVIOURS.items() if not behaviours and s not in EXEMPT]
    assert not empty and not bare_sections, f"behaviours without checks: {empty}; sections: {bare_sections}"


def test_every_section_of_upstream_md_is_covered():
    headings = re.findall(r"^## (.+)$", UPSTREAM_MD.read_text(), flags=re.MULTILINE)
    uncovered = [h for h in headings if not any(h.startswith(section) for section in UPSTREAM_BEHAVIOURS)]
    assert headings and not uncovered, (
        f"upstream-behaviour.md sections with no entry in components.UPSTREAM_BEHAVIOURS: {uncovered}")


def test_every_other_noiser_of_upstream_md_has_its_check():
    text = UPSTREAM_MD.read_text()
    section = text[text.index("## The other noisers"):]
    section = section[:section.index("\n## ", 1)]
    named = re.findall(r"`(\w+)\.(\w+)`", section)
    assert named, "no noiser bullets parsed from upstream-behaviour.md"
    behaviours = UPSTREAM_BEHAVIOURS["The other noisers"]
    missing = [f"{m}.{c}" for m, c in named if not any(b.startswith(f"{m}.{c}") for b in behaviours)]
    assert not missing, f"noisers of upstream-behaviour.md without a check: {missing}"


def test_check_ids_components_and_impacts_are_well_formed():
    bad = [cid for cid, c in REGISTRY.items()
           if not re.fullmatch(r"[a-z_]+\.[A-Za-z0-9_]+", cid) or c.component not in COMPONENTS or not c.summary]
    assert not bad, f"checks with a malformed id, unknown component or no summary: {bad}"
    uncovered = [comp for comp in COMPONENTS if not any(c.component == comp for c in REGISTRY.values())]
    assert not uncovered, f"components without a check: {uncovered}"


@pytest.mark.parametrize("profile", ["ci", "deep"])
def test_cases_are_deterministic_and_uniquely_named(profile):
    for cid, check in REGISTRY.items():
        first = check.cases(profile)
        second = check.cases(profile)
        ids = [c.case_id for c in first]
        assert first, f"{cid} has no {profile} cases"
        assert len(ids) == len(set(ids)), f"{cid}: duplicate case ids {ids}"
        assert [c.fingerprint() for c in first] == [c.fingerprint() for c in second], f"{cid}: inputs not deterministic"
