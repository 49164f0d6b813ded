"""Why a backend differs from the reference where it does, and exactly where that is.

Keys are ``check_id`` (any backend) or ``backend/check_id``. ``make conformance-baseline``
copies the matching reason (:data:`REASONS`) into ``baseline.json``; a known difference without
one is recorded as UNEXPLAINED and fails the gate until a reason is written here.

A known difference with a statement (:attr:`KnownDifference.covers`) says which elements differ
and how: the runner leaves those elements out of the error it measures, and every other element
is held to the check's tolerance and to the baseline's recorded error like any passing check. It
is never a blanket allowance for the whole output.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .spec import VARIANCE_EPS

_FLOAT32_TINY = float(np.finfo(np.float32).tiny)


@dataclass(frozen=True)
class KnownDifference:
    """One difference from the reference, explained.

    Args:
        reason (str): why the backend differs; the baseline records it.
        statement (str): what :attr:`covers` admits, in words, for failure messages. Default
            ``""``.
        covers (Callable | None): ``covers(case, output, expected, got)`` -> boolean array of
            ``expected``'s shape: the elements whose difference the reason explains (and whose
            value has the form it predicts). ``None``: a reason alone, so the check's largest
            error is what the baseline allows. Default ``None``.
    """

    reason: str
    statement: str = ""
    covers: Callable | None = None


def _flushed_subnormal_scores(case, output: str, expected, got) -> np.ndarray:
    """Elements that XLA's flush of subnormal scores explains: in a case whose nonzero scores
    are all subnormal, the reference's fitness is 0 and the backend's is a z-score of those
    scores, below ``2 * max|score| / sqrt(eps)`` in magnitude (eps dominates their variance)."""
    e = np.asarray(expected, np.float64)
    raw = np.abs(np.asarray(case["raw"], np.float64))
    nonzero = raw[raw != 0]
    if output != "fitness" or nonzero.size == 0 or (nonzero >= _FLOAT32_TINY).any():
        return np.zeros(e.shape, bool)
    bound = 2.0 * nonzero.max() / np.sqrt(VARIANCE_EPS)
    return (e == 0) & (np.abs(np.asarray(got, np.float64)) <= bound)


def _returns_new_noiser_params(case, output: str, expected, got) -> np.ndarray:
    """The one flag this difference is about: upstream writes into the dict it was given (1),
    the backend returns a new one (0); every other output of the check must match."""
    e = np.asarray(expected)
    if output != "do_updates/writes_given_dict":
        return np.zeros(e.shape, bool)
    return (e == 1) & (np.asarray(got) == 0)


KNOWN: dict[str, KnownDifference] = {
    "normalization.subnormal_scores": KnownDifference(
        reason=(
            "XLA computes with flush-to-zero and denormals-are-zero, so float32 scores below 1.2e-38 act "
            "as 0 and their shaped fitness is 0; torch keeps subnormals and returns their z-scores. Only "
            "score vectors whose entries are all below 1.2e-38 in magnitude are affected "
            "(torch.set_flush_denormal(True) reproduces XLA on CPU)."),
        statement=("XLA flushed subnormal scores: where every nonzero score is subnormal the reference's "
                   "fitness is 0 and the backend's is their z-score, below 2 * max|score| / sqrt(1e-5)"),
        covers=_flushed_subnormal_scores),
    "api.do_updates_contract": KnownDifference(
        reason=(
            "upstream's do_updates stores the new optimizer state in the noiser_params dict it was given and "
            "returns that same dict; eggroll_torch returns a new dict and leaves the given one as it was. The "
            "returned values are the same; only code that reads the old dict after the call sees a difference "
            "(documented in docs/reference-semantics.md)."),
        statement="do_updates returns a new noiser_params dict instead of writing into the one it was given",
        covers=_returns_new_noiser_params),
}

REASONS: dict[str, str] = {key: known.reason for key, known in KNOWN.items()}


def stated(backend: str, check_id: str) -> KnownDifference | None:
    """The known difference with a statement that applies to ``check_id`` on ``backend``.

    Args:
        backend (str): the backend's name.
        check_id (str): the check's id.

    Returns:
        KnownDifference | None: the entry keyed ``backend/check_id``, else ``check_id``, when it
        has :attr:`KnownDifference.covers`; ``None`` otherwise.
    """
    known = KNOWN.get(f"{backend}/{check_id}") or KNOWN.get(check_id)
    return known if known is not None and known.covers is not None else None
