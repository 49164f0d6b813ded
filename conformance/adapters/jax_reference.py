"""Backend ``jax_reference``: our JAX re-implementation of upstream (the reference of every check)."""
from __future__ import annotations

from . import base
from .jax_api import JaxApi, JaxApiAdapter, jax_device, library_versions


class JaxReferenceAdapter(JaxApiAdapter):
    """``jax_reference`` through upstream's API; golden vectors are recorded from this adapter."""

    name = "jax_reference"

    def api(self) -> JaxApi:
        from jax_reference import llm as llm_loop
        from jax_reference.environments import llm_bandits
        from jax_reference.examples.mlp_e2e import run_mlp_example
        from jax_reference.models import common, llm
        from jax_reference.noiser import all_noisers

        try:
            from jax_reference.models import rl
        except ImportError:  # the rl extra (gymnax, distrax) is not installed
            rl = None
        return JaxApi(all_noisers, common, run_mlp_example, rl, llm, llm_loop, llm_bandits)

    def info(self) -> base.BackendInfo:
        import jax_reference

        return base.BackendInfo(self.name, f"upstream {jax_reference.UPSTREAM_COMMIT}", jax_device(),
                                library_versions())
