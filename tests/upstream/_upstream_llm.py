"""Upstream's LLM modules, random RWKV-7 / QRWKV6 checkpoints, and the probe both models' identity
tests run on each side.

``conformance.adapters.upstream.load_upstream`` already imports upstream's ``models/llm`` modules
(without its ``__init__``, which needs huggingface_hub and tokenizers); the checkpoint builders
are ``eggroll_torch.models.llm.checkpoints``'.

:class:`Probe` holds what differs between the two models (the checkpoint builder, the config
``load_from_torch`` and ``default_state`` take, the variant the updates run on); the runs themselves
(a two-call chain, a noisy population, two ES updates) are the same for both.
"""
from __future__ import annotations

import contextlib
import io
import types
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from conformance.adapters.upstream import LLM_MODULES
from conformance.tolerances import assert_tree_parity
from eggroll_torch.models.llm.checkpoints import qrwkv6_state_dict, rwkv7_state_dict

__all__ = ["LLM_MODULES", "MEMBERS", "Config", "Probe", "Side", "compare", "inputs", "iterinfos",
           "load_upstream_llm", "qrwkv6_state_dict", "quiet", "rwkv7_state_dict"]

MEMBERS = 4
SIGMA, LR, RANK = 0.05, 0.01, 2


def load_upstream_llm(package: types.ModuleType) -> types.ModuleType:
    """Upstream's ``hyperscalees.models.llm`` package (its :data:`LLM_MODULES` imported);
    ``package`` is the ``hyperscalees`` package from ``conformance.adapters.upstream.load_upstream``."""
    return package.models.llm


@dataclass(frozen=True)
class Config:
    """One probe's shape; ``n_kv_head`` (grouped key/value heads) is read by QRWKV6 only."""

    n_layer: int
    n_head: int
    head_size: int
    n_tokens: int
    dtype: str
    seed: int
    n_kv_head: int | None = None
    vocab_size: int = 13


@dataclass(frozen=True)
class Side:
    """One implementation: its model module (``rwkv7`` or ``qrwkv6``), noiser package and
    ``models.common``."""

    model: object
    noiser: object
    common: object


@contextlib.contextmanager
def quiet():
    """Swallow what upstream prints while loading and tracing."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def inputs(cfg: Config):
    """Two token streams, the second call's ``length`` and ``new_starts``."""
    rng = np.random.default_rng(cfg.seed)
    tokens = jnp.asarray(rng.integers(0, cfg.vocab_size, (2, cfg.n_tokens)), dtype=jnp.int32)
    new_starts = jnp.arange(cfg.n_tokens) == cfg.n_tokens // 2
    return tokens[0], tokens[1], jnp.int32(cfg.n_tokens - 1), new_starts


def iterinfos():
    """Members 0..3 of epochs 0, 0, 1, 1: two antithetic pairs."""
    return jnp.array([0, 0, 1, 1], dtype=jnp.int32), jnp.arange(MEMBERS, dtype=jnp.int32)


def compare(ledger, ours, theirs, what: str) -> None:
    """Both trees bit for bit, counted in the session's parity ledger."""
    ledger.record(assert_tree_parity(ours, theirs, "bits", what=what))
    ledger.cases += 1


class Probe:
    """The runs an identity test makes on each side of one language model.

    Args:
        state_dict: ``cfg -> {key: torch tensor}``, a fresh random checkpoint per call (loading
            changes it in place).
        model_config: ``cfg -> config`` handed to ``load_from_torch`` and ``default_state``.
        update_variant: the variant whose maps :meth:`update_outputs` updates through.
        plain_configs: ``{dtype: Config}`` of the unperturbed runs, shared by every variant so that
            :meth:`plain_pair` results can be compared across variants.
    """

    def __init__(self, state_dict: Callable, model_config: Callable, update_variant: str,
                 plain_configs: dict[str, Config]):
        self.state_dict = state_dict
        self.model_config = model_config
        self.update_variant = update_variant
        self.plain_configs = plain_configs
        self._plain_results = {}

    def load(self, side: Side, variant: str, cfg: Config):
        """The model class, its init and an es key tree (from the side's ``simple_es_tree_key``)."""
        model = getattr(side.model, variant)
        sd = self.state_dict(cfg)
        with quiet():
            init = model.load_from_torch(sd, self.model_config(cfg), cfg.dtype)
        keys = side.common.simple_es_tree_key(init.params, jax.random.key(100 + cfg.seed), init.scan_map)
        return model, init, keys

    @staticmethod
    def noiser_for(side: Side, init, batched: bool = False):
        """EggRoll and its ``init_noiser`` result for ``init``'s params."""
        egg = side.noiser.eggroll.EggRoll
        return (egg, *egg.init_noiser(init.params, SIGMA, LR, rank=RANK, noise_reuse=1, use_batched_update=batched))

    def plain_outputs(self, side: Side, variant: str, cfg: Config, mode: str) -> dict:
        """Init trees and the two-call chain of the unperturbed model."""
        model, init, keys = self.load(side, variant, cfg)
        egg, nf, nparams = self.noiser_for(side, init)
        tokens1, tokens2, length, new_starts = inputs(cfg)

        def chain(params, state):
            run = lambda *args: model.forward(egg, nf, nparams, init.frozen_params, params, keys, None, *args)  # noqa: E731
            logits1, state1 = run(tokens1, state)
            logits2, state2 = run(tokens2, state1, length, new_starts)
            return {"logits1": logits1, "state1": state1, "logits2": logits2, "state2": state2}

        state0 = model.default_state(init.params, self.model_config(cfg))
        with quiet():
            out = (jax.jit(chain) if mode == "jit" else chain)(init.params, state0)
        return {"init": tuple(init), "keys": keys, "state0": state0, "out": out}

    def noisy_outputs(self, side: Side, variant: str, cfg: Config, mode: str) -> dict:
        """The second call for four members with EGGROLL noise, from the unperturbed first call's
        state (so it starts from a non-zero state), with ``length`` and ``new_starts``."""
        model, init, keys = self.load(side, variant, cfg)
        egg, nf, nparams = self.noiser_for(side, init)
        tokens1, tokens2, length, new_starts = inputs(cfg)

        def members(params, state):
            _, state1 = model.forward(egg, nf, nparams, init.frozen_params, params, keys, None, tokens1, state)
            return jax.vmap(lambda it: model.forward(egg, nf, nparams, init.frozen_params, params, keys, it, tokens2,
                                                     state1, length, new_starts))(iterinfos())

        state0 = model.default_state(init.params, self.model_config(cfg))
        with quiet():
            logits, states = (jax.jit(members) if mode == "jit" else members)(init.params, state0)
        return {"logits": logits, "states": states}

    def update_outputs(self, side: Side, cfg: Config, batched: bool = False) -> dict:
        """Params and optimiser state after one and after two jitted ``EggRoll.do_updates`` (epochs 0
        and 1) with shaped fitnesses of four members."""
        _, init, keys = self.load(side, self.update_variant, cfg)
        egg, nf, nparams = self.noiser_for(side, init, batched)
        raw = jnp.array([0.3, -1.2, 2.0, 0.7], dtype=jnp.float32)
        epochs, threads = iterinfos()

        # sigma stays a Python float closed over (as in a training loop), so both steps share one compile.
        @jax.jit
        def update(opt_state, params, epoch):
            noiser_params = {"sigma": SIGMA, "opt_state": opt_state}
            fitnesses = egg.convert_fitnesses(nf, noiser_params, raw * (1 + epoch))
            noiser_params, params = egg.do_updates(nf, noiser_params, params, keys, fitnesses,
                                                   (epochs + epoch, threads), init.es_map)
            return noiser_params["opt_state"], params

        out = {}
        opt_state, params = nparams["opt_state"], init.params
        with quiet():
            for step in (1, 2):
                opt_state, params = update(opt_state, params, jnp.int32(step - 1))
                out[f"after_{step}"] = {"params": params, "opt_state": opt_state}
        return out

    def plain_pair(self, sides, variant: str, dtype: str, mode: str):
        """(upstream, ours) plain outputs for ``plain_configs[dtype]``, computed once and kept for the
        cross-variant test."""
        key = (variant, dtype, mode)
        if key not in self._plain_results:
            self._plain_results[key] = tuple(self.plain_outputs(side, variant, self.plain_configs[dtype], mode)
                                             for side in sides)
        return self._plain_results[key]
