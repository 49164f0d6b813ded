"""Golden vectors: the reference's inputs and outputs for every ``ci`` case, committed with the code.

Layout: ``conformance/vectors/v<N>/<check_id>.json`` (schema ``schema/vectors.schema.json``)
with an ``.npz`` sidecar of the same stem. Each case stores its inputs as data
(:mod:`conformance.case_data`: JSON naming every value, arrays in the npz), so a port in any
language can run it; the fingerprint of those inputs, so a case whose inputs changed is reported
as a stale vector instead of being compared with the wrong numbers; its ``flags`` (the branches
of the check it exercises), described with the bugs they expose in the file's ``notes``
(Wycheproof's layout). bfloat16 arrays are stored as their exact float32 values with dtype
``bfloat16`` recorded (npz has no bfloat16), and read back as bfloat16, so an expected output
has the dtype the reference produced. The header names the backend that recorded them
(``upstream`` itself where ``$HYPERSCALEES_SRC`` was set, else ``jax_reference``) and the
jax/jaxlib/optax/numpy/python versions used.
"""
from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bugs import for_check
from .case_data import as_recorded, decode, encode, storable

ROOT = Path(__file__).parent / "vectors"
CURRENT_VERSION = "v2"
FORMAT_VERSION = 2
SCHEMA = Path(__file__).parent / "schema" / "vectors.schema.json"


class StaleVector(Exception):
    """A golden vector was recorded for other inputs than the case now generates."""


@dataclass
class Entry:
    """The stored reference result of one case."""

    fingerprint: str
    outputs: dict = field(default_factory=dict)
    dtypes: dict = field(default_factory=dict)
    aux: dict = field(default_factory=dict)


def _sha(array: np.ndarray) -> str:
    h = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def validate(doc: dict) -> None:
    """Raise ``jsonschema.ValidationError`` if ``doc`` is not a valid vectors document."""
    import jsonschema

    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))


def python_version() -> str:
    return platform.python_version()


class VectorStore:
    """Read access to one version directory of golden vectors (documents validated on load)."""

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory) if directory else ROOT / CURRENT_VERSION
        self._cache: dict[str, dict | None] = {}

    def exists(self) -> bool:
        return self.directory.is_dir()

    def check_ids(self) -> list[str]:
        return sorted(p.stem for p in self.directory.glob("*.json")) if self.exists() else []

    def document(self, check_id: str) -> dict | None:
        path = self.directory / f"{check_id}.json"
        if not path.is_file():
            return None
        doc = json.loads(path.read_text())
        validate(doc)
        return doc

    def entries(self, check_id: str) -> dict[str, Entry] | None:
        """``{case_id: Entry}`` of a check, or ``None`` when it has no vectors."""
        if check_id not in self._cache:
            self._cache[check_id] = self._load(check_id)
        return self._cache[check_id]

    def _load(self, check_id: str):
        doc = self.document(check_id)
        if doc is None:
            return None
        with np.load(self.directory / doc["npz"]) as npz:
            arrays = {k: npz[k] for k in npz.files}
        out = {}
        for case in doc["cases"]:
            entry = Entry(case["fingerprint"])
            for spec in case["outputs"]:
                entry.outputs[spec["name"]] = as_recorded(arrays[spec["key"]], spec["dtype"])
                entry.dtypes[spec["name"]] = spec["dtype"]
            for spec in case["aux"]:
                entry.aux[spec["name"]] = as_recorded(arrays[spec["key"]], spec["dtype"])
            out[case["case_id"]] = entry
        return out

    def get(self, check_id: str, case) -> Entry | None:
        """The entry of ``case``; ``None`` if absent; :class:`StaleVector` if its inputs changed."""
        entries = self.entries(check_id)
        if not entries or case.case_id not in entries:
            return None
        entry = entries[case.case_id]
        if entry.fingerprint != case.fingerprint():
            raise StaleVector(f"golden vector {check_id}/{case.case_id} was recorded for other inputs; "
                              f"run 'make conformance-vectors'")
        return entry

    def stored_cases(self, check_id: str) -> list[tuple[str, dict, frozenset]]:
        """``(case_id, inputs, flags)`` of every case of ``check_id`` as stored: the inputs
        rebuilt from the case's JSON and the npz arrays (``[]`` without vectors)."""
        doc = self.document(check_id)
        if doc is None:
            return []
        with np.load(self.directory / doc["npz"]) as npz:
            arrays = {k: npz[k] for k in npz.files}
        return [(c["case_id"], decode(c["inputs"], arrays), frozenset(c["flags"])) for c in doc["cases"]]

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.directory.iterdir()) if self.exists() else 0


def build_document(check, profile: str, recorded_with: dict, versions: dict,
                   rows: list[tuple]) -> tuple[dict, dict[str, np.ndarray]]:
    """A vectors document and its npz arrays for ``check`` from ``(case, outputs, aux)`` rows.

    Every case stores its inputs (:mod:`conformance.case_data`) and its flags
    (:meth:`Check.case_flags <conformance.checks.base.Check.case_flags>`); the file-level
    ``notes`` describe each flag and name the bugs of :mod:`conformance.bugs` its cases expose.
    """
    arrays: dict[str, np.ndarray] = {}
    doc_cases = []
    for ci, (case, outputs, aux) in enumerate(rows):
        inputs: dict[str, np.ndarray] = {}
        encoded = encode(case.inputs, inputs, f"c{ci}_i")
        arrays.update(inputs)
        specs = {"outputs": [], "aux": []}
        for section, values in (("outputs", outputs), ("aux", aux)):
            for oi, (name, value) in enumerate(values.items()):
                stored, dtype = storable(value)
                key = f"c{ci}_{section[0]}{oi}"
                arrays[key] = stored
                specs[section].append({"name": name, "key": key, "dtype": dtype, "shape": list(stored.shape),
                                       "sha256": _sha(stored)})
        doc_cases.append({"case_id": case.case_id, "fingerprint": case.fingerprint(),
                          "flags": sorted(check.case_flags(case)), "inputs": encoded, **specs})
    doc = {"format": "eggroll-conformance-vectors", "format_version": FORMAT_VERSION, "check_id": check.id,
           "component": check.component, "summary": check.summary, "profile": profile,
           "recorded_with": recorded_with, "versions": versions, "npz": f"{check.id}.npz",
           "notes": notes(check, [c["flags"] for c in doc_cases]), "cases": doc_cases}
    validate(doc)
    return doc, arrays


def notes(check, case_flags: list[list[str]]) -> dict:
    """``{flag: {"description", "bugs": [{"name", "text"}]}}`` for every flag the cases carry."""
    used = sorted({f for flags in case_flags for f in flags})
    out = {flag: {"description": check.branches.get(flag, check.summary), "bugs": []} for flag in used}
    for name, bug in for_check(check.id).items():
        for flag in ([bug.flag] if bug.flag else used):
            if flag in out:
                out[flag]["bugs"].append({"name": name, "text": bug.text})
    return out


def write_document(directory: Path, doc: dict, arrays: dict[str, np.ndarray]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(directory / doc["npz"], **arrays)
    (directory / f"{doc['check_id']}.json").write_text(json.dumps(doc, indent=1) + "\n")


def diff_document(old: dict | None, old_entries: dict[str, Entry] | None, new: dict,
                  new_arrays: dict[str, np.ndarray]) -> list[str]:
    """Human-readable differences between a stored document and a freshly recorded one."""
    cid = new["check_id"]
    if old is None:
        return [f"{cid}: new ({len(new['cases'])} cases)"]
    lines = []
    for key in sorted(set(old["versions"]) | set(new["versions"])):
        if old["versions"].get(key) != new["versions"].get(key):
            lines.append(f"{cid}: {key} {old['versions'].get(key)} -> {new['versions'].get(key)}")
    old_cases = {c["case_id"]: c for c in old["cases"]}
    new_cases = {c["case_id"]: c for c in new["cases"]}
    for case_id in sorted(set(old_cases) - set(new_cases)):
        lines.append(f"{cid}/{case_id}: removed")
    for case_id in sorted(set(new_cases) - set(old_cases)):
        lines.append(f"{cid}/{case_id}: added")
    for case_id in sorted(set(old_cases) & set(new_cases)):
        o, n = old_cases[case_id], new_cases[case_id]
        if o["fingerprint"] != n["fingerprint"]:
            lines.append(f"{cid}/{case_id}: inputs changed")
        if o.get("flags") != n["flags"]:
            lines.append(f"{cid}/{case_id}: flags {o.get('flags')} -> {n['flags']}")
        for section in ("outputs", "aux"):
            old_specs = {s["name"]: s for s in o[section]}
            for spec in n[section]:
                before = old_specs.pop(spec["name"], None)
                if before is None:
                    lines.append(f"{cid}/{case_id}: {section} {spec['name']} added")
                elif before["sha256"] != spec["sha256"]:
                    lines.append(f"{cid}/{case_id}: {section} {spec['name']} changed"
                                 + _delta(old_entries, case_id, section, spec, new_arrays))
            lines.extend(f"{cid}/{case_id}: {section} {name} removed" for name in old_specs)
    return lines


def _delta(old_entries, case_id, section, spec, new_arrays) -> str:
    if not old_entries or case_id not in old_entries:
        return ""
    entry = old_entries[case_id]
    before = (entry.outputs if section == "outputs" else entry.aux).get(spec["name"])
    after = new_arrays[spec["key"]]
    if before is None or before.shape != after.shape:
        return f" (shape {None if before is None else before.shape} -> {after.shape})"
    err = np.abs(before.astype(np.float64) - after.astype(np.float64))
    return f" (max abs diff {np.nanmax(err):.3g}, {int(np.count_nonzero(err))} / {err.size} elements)"
