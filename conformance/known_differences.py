"""Why a backend differs from the reference where it does: the reasons the baseline records.

Keys are ``check_id`` (any backend) or ``backend/check_id``. ``make conformance-baseline``
copies the matching reason into ``baseline.json``; a known difference without one is recorded
as UNEXPLAINED and fails the gate until a reason is written here.
"""
from __future__ import annotations

REASONS: dict[str, str] = {
    "normalization.subnormal_scores": (
        "XLA computes with flush-to-zero and denormals-are-zero, so float32 scores below 1.2e-38 act "
        "as 0 and their shaped fitness is 0; torch keeps subnormals and returns their z-scores. Only "
        "score vectors whose entries are all below 1.2e-38 in magnitude are affected "
        "(torch.set_flush_denormal(True) reproduces XLA on CPU)."),
}
