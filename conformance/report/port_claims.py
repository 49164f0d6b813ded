"""Each claim of the user's compatibility document judged against the port it describes.

``COMPATIBILITY-claims.md`` is about the GitHub port ``Daulbaev/eggroll-pytorch``. The claims
table of :mod:`.claims` tests what each claim says about JAX; this one reads the port's own
certification (``reports/ports/eggroll-pytorch-<version>-<commit>.json``, written by
``make certify-ports PORT=eggroll-pytorch PORT_SRC=<checkout>``) and judges each claim by the
trainer checks that measure it on the port. A claim holds for the port when every check (or
case) it rests on passes, is false when all fail, partly otherwise.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .claims import CLAIMS

PORT = "eggroll-pytorch"

# claim id -> the (trainer check, case or None for every case) measuring it on the port
EVIDENCE: dict[str, tuple] = {
    "low_rank_shapes": (("noise.member_rank", None), ("noise.lowrank_scale", None)),
    "zscore_formula": (("update.observed_noise", "small_spread"),),
    "update_formula": (("update.observed_noise", "sgd"),),
    "sqrt_n": (("update.observed_noise", "sgd"), ("update.observed_vector", None)),
    "deterministic": (("noise.seed_determinism", None),),
    "alternation": (("signs.antithetic_exact", None),),
    "lora_method": (("noise.lowrank_scale", None), ("noise.full_rank_normal", None), ("noise.independence", None),
                    ("trajectory.equivalence", None)),
    "update_sign": (("update.observed_noise", "sgd"), ("update.observed_vector", None)),
    "noise_reuse_zero": (("noise.reuse_epochs", "reuse0"),),
    "noise_reuse_blocks": (("noise.reuse_epochs", "reuse2"),),
    "group_norm": (("normalization.observed_group", None),),
    "optimizer": (("optimizer.observed_adam", None),),
    "match_closely": (("trajectory.equivalence", None),),
}


@dataclass
class PortClaim:
    id: str
    component: str
    claim: str
    verdict: str
    evidence: str

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class PortClaims:
    """The port's report it was read from (``None`` when there is none) and the verdicts."""

    report: str | None
    port: dict
    claims: list

    def to_json(self) -> dict:
        return {"report": self.report, "port": self.port, "claims": [c.to_json() for c in self.claims]}


def latest_report(directory: Path) -> Path | None:
    """The most recently written ``eggroll-pytorch-*.json`` in ``directory``, or ``None``."""
    found = sorted(directory.glob(f"{PORT}-*.json"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def evaluate(ports_dir: Path) -> PortClaims:
    """Every claim of :data:`.claims.CLAIMS` judged from the port's latest report in ``ports_dir``."""
    path = latest_report(Path(ports_dir))
    if path is None:
        return PortClaims(None, {}, [])
    doc = json.loads(path.read_text())
    results = {r["check_id"]: r for r in doc["results"]}
    out = []
    for cid, component, text, _ in CLAIMS:
        verdicts = [_measure(results, check, case) for check, case in EVIDENCE.get(cid, ())]
        measured = [v for v in verdicts if v[0] in ("pass", "fail", "error")]
        if not measured:
            verdict = "not measured"
        elif all(v[0] == "pass" for v in measured):
            verdict = "holds"
        elif all(v[0] != "pass" for v in measured):
            verdict = "false"
        else:
            verdict = "partly"
        evidence = "; ".join(v[1] for v in verdicts) or "no check measures it"
        out.append(PortClaim(cid, component, text, verdict, evidence))
    return PortClaims(path.name, doc["port"], out)


def _measure(results: dict, check: str, case: str | None) -> tuple[str, str]:
    row = results.get(check)
    if row is None:
        return "missing", f"`{check}` not in the report"
    cases = [c for c in row["cases"] if case is None or c["case_id"] == case]
    if not cases:
        return "missing", f"`{check}` has no case {case!r}"
    status = "pass" if all(c["status"] == "pass" for c in cases) else next(
        c["status"] for c in cases if c["status"] != "pass")
    name = f"`{check}`" + (f" ({case})" if case else "")
    first = next((m for c in cases for m in c.get("messages", []) if c["status"] != "pass"), "")
    detail = f": {first[:220]}" if first and status != "pass" else ""
    return status, f"{name} {status}{detail}"
