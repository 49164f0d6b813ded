"""Actor-critic policies over gymnax-style spaces, mirroring upstream's ``hyperscalees.models.rl``.

Name for name the functional mirror of ``jax_reference.models.rl``: the same param trees drawn
from the same keys, the same forward through any noiser, with ``torch.distributions`` in place of
distrax: ``Categorical(logits=...)`` for a discrete action space and
``Independent(Normal(mean, std), 1)`` (distrax's ``MultivariateNormalDiag``) for a continuous one.
:func:`sample` draws from either exactly as distrax's ``sample(seed=key)`` does, from
JAX-compatible keys (:mod:`eggroll_torch.random`).

Spaces are gymnax's own (``gymnax.environments.spaces.Discrete``/``Box``) or the look-alikes
:class:`Discrete` and :class:`Box` here: anything with ``n`` is discrete, anything with
``low``, ``high``, ``shape`` and ``dtype`` is a box.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.distributions import Categorical, Independent, Normal

from .. import random
from .base_model import Model
from .common import (ACTIVATIONS, MLP, MM, Embedding, Linear, Parameter, _align_members, as_dtype, call_submodule,
                     merge_inits)

__all__ = ["ActorCriticMLP", "Box", "Discrete", "InputProcessor", "OutputProcessor", "get_space_defn", "sample"]


class Discrete(NamedTuple):
    """A space of the integers ``0 .. n-1`` (gymnax's ``spaces.Discrete``)."""

    n: int


class Box(NamedTuple):
    """An array space of ``shape`` between ``low`` and ``high`` (gymnax's ``spaces.Box``).

    Only ``dtype=torch.float32`` (or JAX's ``jnp.float32`` on a gymnax Box) makes it continuous.
    """

    low: Any
    high: Any
    shape: tuple
    dtype: Any = torch.float32


def _is_float32(dtype) -> bool:
    # Upstream tests the Box dtype by identity against jnp.float32 (gymnax's default), so
    # np.float32 and np.dtype("float32") make a "boxdiscrete" space there; the same here.
    if isinstance(dtype, torch.dtype):
        return dtype == torch.float32
    return isinstance(dtype, type) and dtype.__module__ == "jax.numpy" and dtype.__name__ == "float32"


def _torch_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    return torch.from_numpy(np.zeros(0, dtype=np.dtype(dtype))).dtype


def _bound(value, space) -> torch.Tensor:
    """A bound as a tensor: an array bound (torch or JAX) as given, a scalar or numpy bound spread
    over the space's shape (upstream multiplies it by ``ones(shape)``)."""
    if isinstance(value, torch.Tensor):
        return value
    if hasattr(value, "shape") and not isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value))
    return torch.as_tensor(np.asarray(value) * np.ones(tuple(space.shape))).to(_torch_dtype(space.dtype))


def get_space_defn(space) -> dict:
    """A plain description of a space.

    Discrete -> ``{"space": "discrete", "start": 0, "n": n}``. A float32 Box (see :class:`Box`)
    -> ``{"space": "continuous", "low", "high"}`` with tensor bounds of the space's shape; any
    other Box -> ``"boxdiscrete"`` with the same bounds, which the processors reject. Anything
    else raises ``NotImplementedError``.
    """
    if hasattr(space, "n") and not hasattr(space, "low"):
        return {"space": "discrete", "start": 0, "n": int(space.n)}
    if all(hasattr(space, name) for name in ("low", "high", "shape", "dtype")):
        kind = "continuous" if _is_float32(space.dtype) else "boxdiscrete"
        return {"space": kind, "low": _bound(space.low, space), "high": _bound(space.high, space)}
    raise NotImplementedError(f"Unsupported space type {space}")


def _flat_size(space: dict) -> int:
    return math.prod(space["low"].shape)


class InputProcessor(Model):
    """Observation -> ``n_embd`` features: ``{"discrete": Embedding (n, n_embd)}`` for an integer
    observation, ``{"continuous": MM (n_embd, size)}`` on the last axis of a float observation
    (a multi-axis Box observation must be flattened to ``(..., size)`` by the caller)."""

    @classmethod
    def rand_init(cls, key, n_embd, space_gymnax, dtype, *args, **kwargs):
        space = get_space_defn(space_gymnax)
        if space["space"] == "discrete":
            return merge_inits(discrete=Embedding.rand_init(key, space["n"], n_embd, dtype))
        if space["space"] == "continuous":
            return merge_inits(continuous=MM.rand_init(key, _flat_size(space), n_embd, dtype))
        raise NotImplementedError("Unsupported space type")

    @classmethod
    def _forward(cls, common_params, x, *args, **kwargs):
        """``(..., n_embd)`` features; ``(N, ..., n_embd)`` for a population. Only the base noiser
        looks up embeddings, so a discrete observation runs unperturbed only."""
        if "discrete" in common_params.params:
            return call_submodule(Embedding, "discrete", common_params, x)
        if "continuous" in common_params.params:
            return call_submodule(MM, "continuous", common_params, x)
        raise NotImplementedError("Unsupported space type")


class OutputProcessor(Model):
    """``n_embd`` features -> action distribution.

    Discrete(n): ``{"discrete": Linear(n_embd, n)}`` -> ``Categorical(logits=...)``. Continuous:
    ``{"continuous": Linear(n_embd, size), "actor_logtstd": Parameter zeros(size)}`` ->
    ``Independent(Normal(mean, exp(log_std)), 1)``, mean and log-std cast to float32 first.
    """

    @classmethod
    def rand_init(cls, key, n_embd, space_gymnax, use_bias, dtype, *args, **kwargs):
        """The Linear takes ``key`` itself; the log-std starts at zero and ignores it."""
        space = get_space_defn(space_gymnax)
        if space["space"] == "discrete":
            return merge_inits(discrete=Linear.rand_init(key, n_embd, space["n"], use_bias, dtype))
        if space["space"] == "continuous":
            size = _flat_size(space)
            zeros = torch.zeros(size, dtype=as_dtype(dtype), device=key.device)
            return merge_inits(
                continuous=Linear.rand_init(key, n_embd, size, use_bias, dtype),
                actor_logtstd=Parameter.rand_init(key, None, None, zeros, dtype),
            )
        raise NotImplementedError("Unsupported space type")

    @classmethod
    def _forward(cls, common_params, x, *args, **kwargs):
        """A distribution of batch shape ``x.shape[:-1]`` (the log-std, ``(size,)`` or ``(N, size)``
        for a population, broadcasts against the mean)."""
        if "discrete" in common_params.params:
            return Categorical(logits=call_submodule(Linear, "discrete", common_params, x))
        if "continuous" in common_params.params:
            mean = call_submodule(Linear, "continuous", common_params, x).to(torch.float32)
            log_std = call_submodule(Parameter, "actor_logtstd", common_params).to(torch.float32)
            # a population's (N, size) log-std gets the mean's axes between members and actions
            log_std = _align_members(log_std, common_params.params["actor_logtstd"], mean)
            return Independent(Normal(mean, torch.exp(log_std)), 1)
        raise NotImplementedError("Unsupported space type")


class ActorCriticMLP(Model):
    """``{"obs_embed", "act_head", "mlp"[, "critic_head"]}``: ``h = act(InputProcessor(x))``,
    ``h = act(MLP(h))`` (``max(n_layers, 1)`` Linear ``n_embd -> n_embd`` layers), then the action
    distribution of ``OutputProcessor(h)`` and, with a critic, ``(distribution, value)`` where
    ``value = Linear(n_embd, 1)(h)`` has shape ``(..., 1)``."""

    @classmethod
    def rand_init(cls, key, n_embd, obs_space, act_space, n_layers, use_bias, activation, have_critic, dtype,
                  *args, **kwargs):
        """``split(key, 4)``: observation, action head, MLP, critic (drawn even without a critic)."""
        obs_key, act_key, mlp_key, crit_key = random.split(key, 4)
        parts = {
            "obs_embed": InputProcessor.rand_init(obs_key, n_embd, obs_space, dtype),
            "act_head": OutputProcessor.rand_init(act_key, n_embd, act_space, use_bias, dtype),
            "mlp": MLP.rand_init(mlp_key, n_embd, n_embd, [n_embd] * (n_layers - 1), use_bias, activation, dtype),
        }
        if have_critic:
            parts["critic_head"] = Linear.rand_init(crit_key, n_embd, 1, use_bias, dtype)
        return merge_inits(**parts)

    @classmethod
    def _forward(cls, common_params, x, *args, **kwargs):
        activation = ACTIVATIONS[common_params.frozen_params["mlp"]["activation"]]
        x = activation(call_submodule(InputProcessor, "obs_embed", common_params, x))
        x = activation(call_submodule(MLP, "mlp", common_params, x))
        pi = call_submodule(OutputProcessor, "act_head", common_params, x)
        if "critic_head" in common_params.params:
            return pi, call_submodule(Linear, "critic_head", common_params, x)
        return pi


def _split_batch(batch_shape: torch.Size, seed: torch.Tensor) -> tuple:
    keyed = tuple(seed.shape[:-1])
    if tuple(batch_shape[:len(keyed)]) != keyed:
        raise ValueError(f"seed batch {keyed} must be the leading axes of the distribution's batch shape "
                         f"{tuple(batch_shape)}")
    return keyed, tuple(batch_shape[len(keyed):])


def sample(pi, seed: torch.Tensor, sample_shape=()) -> torch.Tensor:
    """distrax's ``pi.sample(seed=seed, sample_shape=sample_shape)`` for the distributions
    :class:`OutputProcessor` returns, bit for bit given the same distribution parameters.

    Categorical: ``jax.random.categorical`` (Gumbel max, :func:`eggroll_torch.random.gumbel`) on
    ``pi.logits``, torch's normalised logits, which equal distrax's log-softmax to about an ulp:
    a draw can only differ where two Gumbel-perturbed scores are that close. Diagonal normal:
    ``normal(key, (n, *B, size)) * std + mean`` rounded after the product and after the sum, as
    distrax's bijector chain runs eagerly (under ``jax.jit`` XLA fuses it and the last bits move).

    Args:
        pi (Categorical | Independent): from :class:`OutputProcessor` (``Independent(Normal, 1)``).
        seed (torch.Tensor): one ``torch.uint32`` key ``(2,)``, or one key per population member
            ``(*K, 2)`` as under ``jax.vmap`` of the JAX call, where ``K`` are the leading axes of
            ``pi``'s batch shape ``(*K, *B)``.
        sample_shape (int | tuple[int, ...]): leading sample axes per key. Default ``()``.

    Returns:
        torch.Tensor: ``(*K, *sample_shape, *B)`` int32 category indices (``-1`` where the
        probabilities are not finite and non-negative, as distrax), or
        ``(*K, *sample_shape, *B, size)`` float32 actions.

    Raises:
        ValueError: ``seed``'s batch axes are not the leading axes of ``pi``'s batch shape.
        TypeError: ``pi`` is neither of those distributions.
    """
    shape = (sample_shape,) if isinstance(sample_shape, int) else tuple(sample_shape)
    count = math.prod(shape)
    if isinstance(pi, Categorical):
        keyed, rest = _split_batch(pi.batch_shape, seed)
        logits = pi.logits
        at = len(keyed)
        noise = random.gumbel(seed, (count, *rest, logits.shape[-1]), logits.dtype)
        draws = torch.argmax(noise + logits.unsqueeze(at), dim=-1).to(torch.int32)
        probs = pi.probs
        valid = (torch.isfinite(probs) & (probs >= 0)).all(-1).unsqueeze(at)
        draws = torch.where(valid, draws, torch.full_like(draws, -1))
        return draws.reshape(keyed + shape + rest)
    if isinstance(pi, Independent) and isinstance(pi.base_dist, Normal):
        keyed, rest = _split_batch(pi.batch_shape, seed)
        loc, scale = pi.base_dist.loc, pi.base_dist.scale
        at = len(keyed)
        eps = random.normal(seed, (count, *rest, *pi.event_shape), loc.dtype)
        out = eps * scale.unsqueeze(at) + loc.unsqueeze(at)
        return out.reshape(keyed + shape + rest + tuple(pi.event_shape))
    raise TypeError(f"sample takes the Categorical or Independent(Normal) of OutputProcessor; got {type(pi).__name__}")
