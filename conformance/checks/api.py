"""Upstream's API contract, as its own tests exercise it: what ``init_noiser`` returns, what
``do_updates`` returns and mutates, the optimizer state after a step, the one-member call form
(``iterinfo`` as Python ints) and the public functions' parameter names.

Every case runs one ``api_contract`` (see :mod:`conformance.adapters._api_contract`) for one
noiser with ``optax.adam``; each check compares its share of the outputs: names and flags
exactly, optimizer moments and the forward within ``reduction``.
"""
from __future__ import annotations

import numpy as np

from .. import inputs
from ..adapters import base as caps
from ..spec import NOISERS, NoiserConfig, SolverSpec
from ._common import requires
from .base import Case, Check, register

COMPONENT = "API contract"


def _config(noiser: str) -> NoiserConfig:
    # EggRollBS computes ``epoch // noise_reuse`` eagerly, so upstream's one-member call with a
    # Python-int epoch raises ZeroDivisionError at noise_reuse=0 (a stated deliberate difference
    # of jax_reference, docs/reference-semantics.md): its contract is read at noise_reuse=1.
    bs = noiser == "eggrollbs"
    return NoiserConfig(noiser=noiser, group_size=4 if bs else 0, noise_reuse=1 if bs else 0,
                        solver=SolverSpec.make("adam", b1=0.9, b2=0.999))


def _cases() -> list[Case]:
    params = {"b": inputs.normal("api:b", (3,)), "w": inputs.normal("api:w", (3, 2))}
    keys = {"b": inputs.key("api:kb"), "w": inputs.key("api:kw")}
    out = []
    for noiser in NOISERS:
        config = _config(noiser)
        out.append(Case(noiser, {"config": config, "params": params, "keys": keys, "es_map": {"b": 0, "w": 1},
                                 "fitnesses": inputs.zscore(inputs.fitness("normal", 8, noiser)).astype(np.float32),
                                 "population": inputs.population("full", 8, epoch=1),
                                 "x": inputs.normal("api:x", (2,))},
                        requires(config, "float32", extra={caps.API})))
    return out


class _Contract(Check):
    component = COMPONENT
    requires = frozenset({caps.API})
    prefixes: tuple = ()

    def cases(self, profile):
        return _cases()

    def compute(self, adapter, case, noise=None):
        everything = adapter.api_contract(case["config"], case["params"], case["keys"], case["es_map"],
                                          case["fitnesses"], case["population"], case["x"])
        return {k: np.asarray(v) for k, v in everything.items() if k.startswith(self.prefixes)}


@register
class InitNoiserState(_Contract):
    id = "api.init_noiser_state"
    summary = "init_noiser's frozen and mutable keys ({} and {} for the base Noiser); adam's count and moments " \
              "after one do_updates"
    prefixes = ("init/", "opt_state/")
    output_kinds = {"opt_state/mu": "reduction", "opt_state/nu": "reduction"}


@register
class DoUpdatesContract(_Contract):
    id = "api.do_updates_contract"
    summary = "do_updates returns (noiser_params, params), writes the new opt_state into the dict it was given " \
              "and leaves the params it was given untouched"
    prefixes = ("do_updates/",)


@register
class OneMemberCall(_Contract):
    id = "api.one_member_call"
    summary = "do_mm of one member with iterinfo as Python ints (epoch, thread_id), no vmap"
    rng = True
    prefixes = ("one_member/",)
    default_kind = "reduction"


@register
class KeywordNames(_Contract):
    id = "api.keyword_names"
    summary = "parameter names of init_noiser, do_mm, do_Tmm, get_noisy_standard, convert_fitnesses, do_updates"
    prefixes = ("signature/",)
