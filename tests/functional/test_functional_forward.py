"""forward.*: population forwards (``do_mm``, ``do_Tmm``, ``get_noisy_standard``) against
jax_reference vmapped over the same members (kind ``reduction``: the matmuls' summation order
differs between XLA and torch)."""
from __future__ import annotations

import jax
import numpy as np
import pytest
import torch

import jax_reference.noiser as jnoiser
from conformance.spec import PERTURBING_NOISERS
from conformance.tolerances import assert_parity
from eggroll_torch import noiser as tnoiser
from parity_support import DEVICES, jax_key, key, matrix, population, random_tensor, to_jax

SIGMA = 0.2
ALL = [*PERTURBING_NOISERS, "noop"]


def _pair(name, param, **options):
    options = dict(rank=2, noise_reuse=1) | options
    if name == "eggrollbs":
        options["group_size"] = 4
    jf, jn = jnoiser.all_noisers[name].init_noiser(to_jax(param), SIGMA, 0.1, **options)
    tf, tn = tnoiser.all_noisers[name].init_noiser(param, SIGMA, 0.1, **options)
    return jnoiser.all_noisers[name], (jf, jn), tnoiser.all_noisers[name], (tf, tn)


def _jax_forward(cls, frozen, nparams, method, param, k, jax_pop, x):
    fn = getattr(cls, method)
    member = lambda it, xm: fn(frozen, nparams, to_jax(param), jax_key(k), it, xm)  # noqa: E731
    return np.asarray(jax.vmap(member)(jax_pop, to_jax(x)))


F32, BF16, F16 = torch.float32, torch.bfloat16, torch.float16
SHAPES = {"do_mm": (5, 7), "do_Tmm": (7, 5)}
# Every noiser and method in float32, the low-precision dtypes on a representative subset.
DEFAULT = {(name, method, F32) for name in ALL for method in SHAPES} | {
    ("eggroll", "do_mm", BF16), ("eggroll", "do_Tmm", F16), ("sparse", "do_mm", BF16), ("open_es", "do_mm", F16),
}


@pytest.mark.parametrize("name, method, dtype", matrix(DEFAULT, ALL, list(SHAPES), [F32, BF16, F16]))
def test_forward_population_matches_reference(name, method, dtype):
    shape = SHAPES[method]
    param = random_tensor(0, shape, dtype)
    jcls, (jf, jn), tcls, (tf, tn) = _pair(name, param)
    k = key(7)
    torch_pop, jax_pop = population(6, epoch=2, first_thread=1)
    x = random_tensor(1, (6, 7), dtype)
    expected = _jax_forward(jcls, jf, jn, method, param, k, jax_pop, x)
    got = getattr(tcls, method)(tf, tn, param, k, torch_pop, x)
    assert got.shape == (6, 5)
    assert_parity(got, expected, "reduction", what=f"{name}.{method}")


@pytest.mark.parametrize("name", ["eggroll", "open_es", "eggrollbs", "alteggroll"])
def test_forward_batched_inputs(name):
    """Each member may carry extra batch axes: ``x (N, B, in) -> (N, B, out)``."""
    param = random_tensor(2, (4, 3), torch.float32)
    jcls, (jf, jn), tcls, (tf, tn) = _pair(name, param)
    torch_pop, jax_pop = population(4)
    x = random_tensor(3, (4, 2, 3), torch.float32)
    expected = _jax_forward(jcls, jf, jn, "do_mm", param, key(1), jax_pop, x)
    assert_parity(tcls.do_mm(tf, tn, param, key(1), torch_pop, x), expected, "reduction")


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("freeze_nonlora", [False, True])
def test_forward_noisy_standard(name, freeze_nonlora):
    param = random_tensor(4, (5,), torch.float32)
    jcls, (jf, jn), tcls, (tf, tn) = _pair(name, param, freeze_nonlora=freeze_nonlora)
    torch_pop, jax_pop = population(6, epoch=1)
    member = lambda it: jcls.get_noisy_standard(jf, jn, to_jax(param), jax_key(key(2)), it)  # noqa: E731
    expected = np.asarray(jax.vmap(member)(jax_pop))
    got = tcls.get_noisy_standard(tf, tn, param, key(2), torch_pop)
    if got.shape == param.shape:
        got = got.expand(expected.shape)
    assert_parity(got, expected, "elementwise")


@pytest.mark.parametrize("name", ALL)
def test_forward_without_noise(name):
    """``iterinfo=None`` is the plain product, for any input batch shape."""
    param = random_tensor(5, (3, 4), torch.float32)
    _, _, tcls, (tf, tn) = _pair(name, param)
    x = random_tensor(6, (2, 5, 4), torch.float32)
    assert torch.equal(tcls.do_mm(tf, tn, param, key(0), None, x), x @ param.T)
    assert torch.equal(tcls.get_noisy_standard(tf, tn, param, key(0), None), param)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["eggroll", "open_es", "sparse"])
def test_forward_single_member_matches_population(name, device):
    """``iterinfo=(epoch, thread)`` gives row ``thread`` of the population call."""
    param = random_tensor(7, (5, 6), torch.float32, device)
    _, _, tcls, (tf, tn) = _pair(name, param)
    pop, _ = population(4, epoch=3, device=device)
    x = random_tensor(8, (4, 6), torch.float32, device)
    together = tcls.do_mm(tf, tn, param, key(9, device), pop, x)
    for n in range(4):
        alone = tcls.do_mm(tf, tn, param, key(9, device), (3, n), x[n])
        assert_parity(alone, together[n], "member_row", what=f"member {n} alone")


@pytest.mark.parametrize("name", ["eggroll", "open_es", "eggrollbs", "alteggroll", "sparse"])
def test_forward_emb_raises_like_upstream(name):
    param = random_tensor(9, (4, 3), torch.float32)
    _, _, tcls, (tf, tn) = _pair(name, param)
    with pytest.raises(NotImplementedError):
        tcls.do_emb(tf, tn, param, key(0), None, torch.tensor([0, 2]))


def test_forward_noop_emb_looks_up():
    param = random_tensor(10, (4, 3), torch.float32)
    assert torch.equal(tnoiser.base_noiser.Noiser.do_emb({}, {}, param, key(0), None, torch.tensor([2, 0])),
                       param[[2, 0]])
