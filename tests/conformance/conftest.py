"""Fixtures of the harness tests: adapters, the golden-vector reference, the hypothesis profile.

``CONFORMANCE_PROFILE=deep`` runs the hypothesis properties with the long profile
(``make conformance-deep`` runs the harness's own; this is the pytest-side counterpart).
"""
from __future__ import annotations

import os

import pytest

from conformance.golden import VectorStore
from conformance.reference import Reference

PROFILE = os.environ.get("CONFORMANCE_PROFILE", "ci")


@pytest.fixture(scope="session")
def torch_adapter():
    from conformance.adapters.eggroll_torch import EggrollTorchAdapter

    return EggrollTorchAdapter("cpu")


@pytest.fixture(scope="session")
def jax_adapter():
    from conformance.adapters.jax_reference import JaxReferenceAdapter

    return JaxReferenceAdapter()


@pytest.fixture(scope="session")
def vectors():
    return VectorStore()


@pytest.fixture(scope="session")
def vector_reference(vectors):
    """Expected outputs from the committed golden vectors only (what a torch-only machine uses)."""
    return Reference(vectors, None)
