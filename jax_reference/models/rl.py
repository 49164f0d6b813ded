"""Actor-critic policies over gymnax spaces (upstream's ``hyperscalees.models.rl``).

An observation is embedded (:class:`InputProcessor`), passed through an :class:`MLP` with the
activation applied before and after it, and read out by an action head
(:class:`OutputProcessor`, a distrax distribution) and optionally a scalar critic head. Every
weight goes through the noiser like any other block, so one forward serves the unperturbed
policy and every population member.

Needs the ``rl`` extra (gymnax for the spaces, distrax for the distributions).
"""
import distrax
import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from .base_model import Model
from .common import ACTIVATIONS, MLP, MM, Embedding, Linear, Parameter, call_submodule, merge_inits

__all__ = ["get_space_defn", "InputProcessor", "OutputProcessor", "ActorCriticMLP"]


def _bound(value, space):
    # A JAX array bound is kept as given; a scalar (or a numpy array) is spread over the shape in
    # the space's dtype, with JAX's promotion deciding the result dtype.
    if isinstance(value, jnp.ndarray):
        return value
    return value * jnp.ones(space.shape, dtype=space.dtype)


def get_space_defn(space):
    """A plain description of a gymnax space.

    ``Discrete(n)`` -> ``{"space": "discrete", "start": 0, "n": n}``. A ``Box`` whose ``dtype`` IS
    ``jnp.float32`` (an identity test: ``np.float32`` or ``np.dtype("float32")`` do not count) ->
    ``{"space": "continuous", "low", "high"}``; any other ``Box`` -> ``"boxdiscrete"`` with the
    same bounds, which the processors below do not support. ``low``/``high`` have the space's
    shape. Other spaces raise ``NotImplementedError``.
    """
    if isinstance(space, spaces.Discrete):
        return {"space": "discrete", "start": 0, "n": int(space.n)}
    if isinstance(space, spaces.Box):
        kind = "continuous" if space.dtype is jnp.float32 else "boxdiscrete"
        return {"space": kind, "low": _bound(space.low, space), "high": _bound(space.high, space)}
    raise NotImplementedError(f"Unsupported space type {space}")


def _flat_size(space):
    """Number of scalars in one element of a Box description (a numpy integer, as upstream)."""
    return np.prod(jnp.array(space["low"]).shape)


class InputProcessor(Model):
    """Observation -> ``(n_embd,)`` features.

    Discrete: an :class:`Embedding` row ``{"discrete": (n, n_embd)}`` for an integer observation.
    Continuous: an :class:`MM` ``{"continuous": (n_embd, size)}`` applied to the observation's
    last axis, so a multi-axis Box observation must be flattened by the caller to ``(size,)``.
    """

    @classmethod
    def rand_init(cls, key, n_embd, space_gymnax, dtype, *args, **kwargs):
        """The whole ``key`` goes to the one block of the space's kind."""
        space = get_space_defn(space_gymnax)
        if space["space"] == "discrete":
            return merge_inits(discrete=Embedding.rand_init(key, space["n"], n_embd, dtype))
        if space["space"] == "continuous":
            return merge_inits(continuous=MM.rand_init(key, _flat_size(space), n_embd, dtype))
        raise NotImplementedError("Unsupported space type")

    @classmethod
    def _forward(cls, common_params, x, *args, **kwargs):
        # Noisers other than the base one raise on embedding lookups, so a discrete observation
        # runs only unperturbed.
        if "discrete" in common_params.params:
            return call_submodule(Embedding, "discrete", common_params, x)
        if "continuous" in common_params.params:
            return call_submodule(MM, "continuous", common_params, x)
        raise NotImplementedError("Unsupported space type")


class OutputProcessor(Model):
    """``(n_embd,)`` features -> action distribution.

    Discrete(n): a :class:`Linear` ``"discrete"`` to ``n`` logits -> ``distrax.Categorical`` (which
    stores the log-softmax of the logits). Continuous Box: a :class:`Linear` ``"continuous"`` to the
    mean and a free ``"actor_logtstd"`` :class:`Parameter` (zeros, one per action scalar, noised like
    any ``PARAM``) -> ``distrax.MultivariateNormalDiag(mean, exp(log_std))``, both cast to float32.
    """

    @classmethod
    def rand_init(cls, key, n_embd, space_gymnax, use_bias, dtype, *args, **kwargs):
        """The Linear takes ``key`` itself; the log-std ignores it (it starts at zero)."""
        space = get_space_defn(space_gymnax)
        if space["space"] == "discrete":
            return merge_inits(discrete=Linear.rand_init(key, n_embd, space["n"], use_bias, dtype))
        if space["space"] == "continuous":
            out_size = _flat_size(space)
            return merge_inits(
                continuous=Linear.rand_init(key, n_embd, out_size, use_bias, dtype),
                actor_logtstd=Parameter.rand_init(key, None, None, jnp.zeros(out_size, dtype=dtype), dtype),
            )
        raise NotImplementedError("Unsupported space type")

    @classmethod
    def _forward(cls, common_params, x, *args, **kwargs):
        if "discrete" in common_params.params:
            return distrax.Categorical(logits=call_submodule(Linear, "discrete", common_params, x))
        if "continuous" in common_params.params:
            mean = call_submodule(Linear, "continuous", common_params, x)
            log_std = call_submodule(Parameter, "actor_logtstd", common_params)
            # The log-std is exponentiated after the cast, so a half-precision model still gets a
            # float32 scale; the (size,) scale broadcasts over any leading axes of the mean.
            return distrax.MultivariateNormalDiag(mean.astype(jnp.float32), jnp.exp(log_std.astype(jnp.float32)))
        raise NotImplementedError("Unsupported space type")


class ActorCriticMLP(Model):
    """Policy (and value) network: ``{"obs_embed", "act_head", "mlp"[, "critic_head"]}``.

    Forward of one observation: ``h = act(InputProcessor(x))``, ``h = act(MLP(h))`` with the MLP
    of ``n_layers`` Linear ``n_embd -> n_embd`` layers (``n_layers <= 1`` gives one), then the
    action distribution of ``OutputProcessor(h)``; with a critic, ``(distribution, value)`` where
    ``value`` is a ``Linear(n_embd, 1)`` of ``h`` with shape ``(..., 1)``.
    """

    @classmethod
    def rand_init(cls, key, n_embd, obs_space, act_space, n_layers, use_bias, activation, have_critic, dtype,
                  *args, **kwargs):
        """``key`` splits into four: observation, action head, MLP, critic (drawn even without one)."""
        obs_key, act_key, mlp_key, crit_key = jax.random.split(key, 4)
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
