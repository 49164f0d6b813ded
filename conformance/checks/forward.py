"""Forward passes with noise: ``do_mm``, ``do_Tmm`` and ``get_noisy_standard``."""
from __future__ import annotations

import numpy as np

from .. import inputs
from ..adapters import base as caps
from ..spec import NoiserConfig
from ..tolerances import compare
from ._common import requires
from .base import Case, Check, register

COMPONENT = "Forward with noise"


def forward_case(case_id: str, config: NoiserConfig, param_shape: tuple, n: int | None, batch: tuple,
                 in_dim: int, thread_kind: str = "permuted", epoch=0) -> Case:
    """``n=None``: evaluation without noise (``iterinfo=None``), ``x`` has no member axis."""
    x_shape = (*batch, in_dim) if n is None else (n, *batch, in_dim)
    pop = None if n is None else inputs.population(thread_kind, n, epoch, case_id)
    return Case(case_id, {"config": config, "param": inputs.normal(case_id + ":param", param_shape),
                          "key": inputs.key(case_id), "population": pop,
                          "x": inputs.normal(case_id + ":x", x_shape)},
                requires(config, extra={caps.FORWARD}))


class _Forward(Check):
    requires = frozenset({caps.FORWARD})
    rng = True
    default_kind = "reduction"
    method = "do_mm"

    def compute(self, adapter, case, noise=None):
        fn = getattr(adapter, self.method)
        return {"y": np.asarray(fn(case["config"], case["param"], case["key"], case["population"], case["x"]))}

    def strategy(self, profile):
        from hypothesis import strategies as st

        transposed = self.method == "do_Tmm"

        def make(out_in, rank, n, batch, epoch, reuse):
            out_dim, in_dim = out_in
            shape = (in_dim, out_dim) if transposed else (out_dim, in_dim)
            return forward_case("hypothesis", NoiserConfig(rank=rank, noise_reuse=reuse), shape, n, batch,
                                in_dim, "subset", epoch)

        return st.builds(make, st.sampled_from(((4, 3), (1, 5), (8, 8))), st.sampled_from((1, 4)),
                         st.sampled_from((1, 4, 7)), st.sampled_from(((), (2,))), st.integers(0, 20),
                         st.sampled_from((0, 2)))


def _mm_cases(case_prefix: str, transposed: bool) -> list[Case]:
    out = []
    for out_dim, in_dim in ((4, 3), (16, 3), (1, 7), (8, 8)):
        shape = (in_dim, out_dim) if transposed else (out_dim, in_dim)
        for rank, batch in ((1, ()), (4, (3,))):
            name = f"{case_prefix}-{out_dim}x{in_dim}-r{rank}-b{len(batch)}"
            out.append(forward_case(name, NoiserConfig(rank=rank, sigma=0.2), shape, 6, batch, in_dim))
    out.append(forward_case(f"{case_prefix}-odd-subset", NoiserConfig(rank=2), (5, 4) if not transposed else (4, 5),
                            7, (2,), 4, "subset", epoch=np.arange(7)))
    return out


@register
class DoMM(_Forward):
    id = "forward.do_mm"
    component = COMPONENT
    summary = "do_mm(param (out, in), x) = x @ param.T + x @ B @ A.T"

    def cases(self, profile):
        return _mm_cases("mm", transposed=False)


@register
class DoTMM(_Forward):
    id = "forward.do_Tmm"
    component = COMPONENT
    method = "do_Tmm"
    summary = "do_Tmm(param (in, out), x) = x @ param + x @ A @ B.T"

    def cases(self, profile):
        return _mm_cases("tmm", transposed=True)


@register
class NoisyStandard(Check):
    id = "forward.noisy_standard"
    component = COMPONENT
    summary = "get_noisy_standard(param) = param + full noise of the member"
    requires = frozenset({caps.FORWARD})
    rng = True
    default_kind = "elementwise"

    def cases(self, profile):
        out = []
        for shape in ((5,), (3, 4), (2, 2, 3)):
            name = f"std-{'x'.join(map(str, shape))}"
            c = NoiserConfig(sigma=0.3)
            out.append(Case(name, {"config": c, "param": inputs.normal(name, shape), "key": inputs.key(name),
                                   "population": inputs.population("subset", 5, name=name)},
                            requires(c, extra={caps.FORWARD})))
        return out

    def compute(self, adapter, case, noise=None):
        return {"y": np.asarray(adapter.noisy_standard(case["config"], case["param"], case["key"],
                                                       case["population"]))}


@register
class NoNoiseEval(Check):
    id = "forward.no_noise_eval"
    component = COMPONENT
    impact = "medium"
    summary = "iterinfo=None evaluates the unperturbed model: x @ W.T, x @ W, param"
    requires = frozenset({caps.FORWARD})
    default_kind = "reduction"
    own_rng_relations = True

    def cases(self, profile):
        return [forward_case("eval-4x3", NoiserConfig(rank=2), (4, 3), None, (5,), 3),
                forward_case("eval-8x8", NoiserConfig(rank=4), (8, 8), None, (), 8)]

    def compute(self, adapter, case, noise=None):
        c, p, k, x = case["config"], case["param"], case["key"], case["x"]
        return {"mm": np.asarray(adapter.do_mm(c, p, k, None, x)),
                "tmm": np.asarray(adapter.do_Tmm(c, p.T.copy(), k, None, x)),
                "std": np.asarray(adapter.noisy_standard(c, p, k, None))}

    def relations(self, outputs, case):
        p, x = case["param"].astype(np.float64), case["x"].astype(np.float64)
        want = x @ p.T
        ok = compare(outputs["mm"], want, "unperturbed_forward").ok and compare(outputs["tmm"], want,
                                                                                "unperturbed_forward").ok
        return ([] if ok else ["evaluation without noise differs from x @ W.T"]) + (
            [] if np.array_equal(outputs["std"], case["param"])
            else ["noisy_standard(iterinfo=None) changed the param"])
