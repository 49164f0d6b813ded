"""``reports/conformance.json``: every result of a run, machine-readable (schema in ``conformance/schema``)."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

SCHEMA = Path(__file__).resolve().parents[1] / "schema" / "conformance.schema.json"


def build(run) -> dict:
    """The report document of a :class:`~conformance.report.outcome.RunOutcome`."""
    return {
        "format": "eggroll-conformance-report", "format_version": 1, "profile": run.profile,
        "environment": run.environment,
        "reference": {"vectors": run.vectors_dir, "live": run.live_info},
        "backends": run.backend_infos, "unavailable": dict(run.unavailable),
        "checks": [{"id": c.id, "component": c.component, "impact": c.impact, "summary": c.summary}
                   for c in run.checks],
        "results": [r.to_json() for r in run.results],
        "gate": {"ok": run.gate.ok, "violations": [asdict(v) for v in run.gate.violations], "notes": run.gate.notes},
        "claims": [c.to_json() for c in run.claims],
        "port_claims": None if run.port_claims is None else run.port_claims.to_json(),
        "trainer_verdicts": [p.to_json() for p in run.trainer_verdicts],
        "duration_s": round(run.duration_s, 2),
    }


def validate(doc: dict) -> None:
    import jsonschema

    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))


def write(doc: dict, path: Path) -> None:
    validate(doc)
    path.write_text(json.dumps(doc, indent=1) + "\n")
