"""Hypothesis profiles and strategies for the differential properties.

``ci`` is derandomized (the same examples on every run, so the gate is reproducible) and does
not shrink; ``deep`` (``make conformance-deep``) draws many more examples at random and shrinks
a failure to a minimal counterexample.
"""
from __future__ import annotations

import numpy as np

_MILLI = float(np.float32(1e-3))
_TINY = 1e-15

PROFILES = {
    "ci": {"max_examples": 12, "derandomize": True, "shrink": False},
    "deep": {"max_examples": 150, "derandomize": False, "shrink": True},
}


def settings_for(profile: str):
    """``hypothesis.settings`` of a harness profile (no deadline, no example database)."""
    from hypothesis import HealthCheck, Phase, settings

    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    p = PROFILES[profile]
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if p["shrink"] else [])
    return settings(max_examples=p["max_examples"], derandomize=p["derandomize"], deadline=None,
                    database=None, phases=phases, print_blob=False,
                    suppress_health_check=list(HealthCheck))


def float32_vectors(sizes, magnitude: float = 1e6):
    """float32 score vectors of one of ``sizes`` mixing scales, ties and repeated values (no
    NaN/inf: scores are finite). Few distinct sizes keep the reference's compilations few."""
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    # Subnormal scores, and tiny ones whose means or variances turn subnormal, are the subject
    # of their own check (normalization.subnormal_scores): XLA flushes them, torch does not.
    elements = st.one_of(
        st.floats(-magnitude, magnitude, width=32, allow_subnormal=False),
        st.sampled_from([0.0, 1.0, -1.0, 3.25]),
        st.floats(-_MILLI, _MILLI, width=32, allow_subnormal=False),
    ).filter(lambda v: v == 0.0 or abs(v) >= _TINY)
    return st.sampled_from(tuple(sizes)).flatmap(
        lambda n: hnp.arrays(np.float32, n, elements=elements)).filter(well_conditioned)


def well_conditioned(raw: np.ndarray) -> bool:
    """Constant, or spread at least 1e-3 of the magnitude: otherwise (x - mean) cancels to
    rounding noise, which then differs with any change of summation order (the reference's
    own answer for 64 copies of -894373.2 in groups of 8 is -0.25, not 0)."""
    r = raw.astype(np.float64)
    return bool(np.all(r == r[0]) and r[0] == 0.0) or r.std() >= 1e-3 * np.abs(r).max()


def thread_id_arrays(sizes=(1, 4, 7, 8)):
    """int32 thread ids: distinct, in any order, possibly odd in count and with broken pairs."""
    from hypothesis import strategies as st

    return st.sampled_from(tuple(sizes)).flatmap(
        lambda n: st.lists(st.integers(0, 64), min_size=n, max_size=n, unique=True)).map(
        lambda t: np.asarray(t, np.int32))
