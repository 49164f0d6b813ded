"""Port certification machinery that needs no published port: draw routing and on-demand install."""
from __future__ import annotations

import sys
from types import SimpleNamespace

import jax
import numpy as np
import pytest
import torch

from conformance.adapters.ports import _reference_draws as routing
from conformance.certify.catalog import PORTS, PortSpec, ensure_installed, find


def _port_like_module():
    """A stand-in for a port module: seeds a torch.Generator per member and draws with torch.randn."""
    def member_noise(seed: int, shape: tuple) -> torch.Tensor:
        gen = module.torch.Generator(device="cpu")
        gen.manual_seed(seed)
        return module.torch.randn(*shape, generator=gen, dtype=torch.float32)

    module = SimpleNamespace(torch=torch, member_noise=member_noise)
    return module


def test_routed_draws_give_the_reference_normal_for_the_seeded_member():
    key = np.array([12, 345], np.uint32)
    draws = routing.ReferenceDraws(key, pairs=8)
    module = _port_like_module()
    with routing.routed_draws(module, lambda seed, size, dtype: draws.draw(seed // 100, seed % 100, size, dtype)):
        got = module.member_noise(3 * 100 + 5, (4, 2))
    member_key = jax.random.fold_in(jax.random.fold_in(jax.random.wrap_key_data(key), 3), 5)
    want = np.asarray(jax.random.normal(member_key, (4, 2), np.float32))
    np.testing.assert_array_equal(got.numpy(), want)
    assert module.torch is torch, "the port module gets its torch back after the block"


def test_routed_draws_refuse_an_unseeded_draw():
    module = _port_like_module()
    with routing.routed_draws(module, lambda *a: torch.zeros(1)), pytest.raises(RuntimeError, match="seeded"):
        module.torch.randn(3)


def test_install_is_skipped_when_the_pinned_version_is_present():
    spec = PortSpec("numpy", np.__version__, "unused:Unused", "numpy")
    result = ensure_installed(spec, python="/nonexistent/python")
    assert result.ok and result.command == []


def test_install_runs_pip_no_deps_with_the_catalog_flags():
    spec = find("eggroll-trainer")
    result = ensure_installed(PortSpec("not-a-real-dist-xyz", "9.9.9", spec.adapter, "x", spec.pip_flags),
                              python=sys.executable + "-missing")
    assert not result.ok
    assert result.command[1:4] == ["-m", "pip", "install"] and "--no-deps" in result.command
    assert "--ignore-requires-python" in result.command and result.command[-1] == "not-a-real-dist-xyz==9.9.9"


def test_catalog_names_exact_versions():
    assert all(p.version.count(".") >= 1 and p.requirement == f"{p.distribution}=={p.version}" for p in PORTS)
    with pytest.raises(ValueError, match="--backend"):
        find("not-in-catalog")
