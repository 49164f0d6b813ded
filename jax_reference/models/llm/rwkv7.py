"""RWKV-7 ("Goose", x070) over one stream of tokens, with every weight use routed through the noiser.

Params (after :meth:`BaseRWKV.load_from_torch` of an official RWKV-7 ``.pth`` state dict), with
``C = n_embd``, ``H`` heads of size ``S`` (``C = H * S``), ``L`` layers, ``V`` the vocabulary:

- ``emb.weight (V, C)`` and ``head.weight (V, C)``: read directly, never noised (``EXCLUDED``).
- ``ln0``, ``ln_out``: LayerNorm ``weight``/``bias (C,)``.
- ``blocks``: every leaf stacked over layers (leading axis ``L``, ``scan_map`` ``(0,)``):
  ``ln1``, ``ln2`` (LayerNorms); ``att`` (time mixing): token-shift mixes ``x_r, x_w, x_k, x_v,
  x_a, x_g (C,)``, ``w0, a0, v0 (C,)`` biases with low-rank pairs ``w1/w2, a1/a2, v1/v2, g1/g2``
  (``(C, D)``/``(D, C)``, applied as ``x @ W``), ``k_k, k_a (C,)``, ``r_k (H, S)``,
  ``receptance, key, value, output`` (``weight (C, C)``, applied as ``x @ W.T``), ``ln_x``
  (GroupNorm over ``H`` groups); ``ffn`` (channel mixing): ``x_k (C,)``, ``key.weight (4C, C)``,
  ``value.weight (C, 4C)``.

Recurrent state, one array of shape ``(L, 2 + S, C)``: per layer, row 0 is the channel mixing's
token-shift input (the last ``ln2`` output), row 1 the time mixing's token-shift input (the last
``ln1`` output), rows ``2:`` the ``H`` WKV matrices ``(H, S, S)`` stored by a plain reshape to
``(S, C)``. A WKV matrix is indexed ``[value channel, key channel]``.

The four models differ only in how they run the recurrence: :class:`BaseRWKV` (a Python loop
over tokens inside a ``lax.scan`` over layers), :class:`ScanRWKV` (``lax.scan`` over tokens),
:class:`AssociativeScanRWKV` (``lax.associative_scan`` over tokens) and :class:`FastRWKV`
(:class:`BaseRWKV`'s token loop inside a Python loop over layers).
"""
import re
from functools import partial

import jax
import jax.numpy as jnp

from ..base_model import Model
from ..common import EXCLUDED, MM_PARAM, PARAM, TMM, Linear, Parameter, call_submodule
from ..common import layer_norm as _standardize
from .llm import LLM

__all__ = ["layer_norm", "group_norm", "LayerNorm", "GroupNorm", "ChannelMixing", "TimeMixing", "BaseRWKV",
           "ScanRWKV", "AssociativeScanRWKV", "FastRWKV"]

# Time-mixing leaves that are plain vectors/matrices added or multiplied elementwise (full noise),
# the low-rank pair matrices applied with TMM, and the square projections applied with Linear.
_ATT_VECTORS = ("a0", "k_a", "k_k", "r_k", "v0", "w0", "x_a", "x_g", "x_k", "x_r", "x_v", "x_w")
_ATT_LOW_RANK = ("a1", "a2", "g1", "g2", "v1", "v2", "w1", "w2")
_ATT_LINEARS = ("key", "output", "receptance", "value")
# Substrings of the official checkpoint's keys whose tensors come shaped (1, 1, C) and are squeezed.
_SQUEEZED = (".x_", ".k_", ".a0", ".v0", ".w0")
# GroupNorm epsilon of RWKV-7's ln_x (the official code's 64e-5).
_LN_X_EPS = 64e-5


def layer_norm(x, w, eps=1e-5):
    """LayerNorm over the last axis of ``x`` with ``w = {"weight": ..., "bias": ...}``
    (population variance, ``eps`` inside the square root)."""
    return _standardize(x, eps) * w["weight"] + w["bias"]


def group_norm(x, num_groups, weight, bias, eps):
    """GroupNorm of ``x (N, C, *rest)``: axis 1 is split into ``num_groups`` groups of ``C //
    num_groups`` channels, each standardised over its channels and ``rest`` (population
    variance); then ``weight``/``bias (C,)`` scale and shift per channel."""
    n, c = x.shape[:2]
    grouped = x.reshape(n, num_groups, c // num_groups, *x.shape[2:])
    axes = (2, *range(3, grouped.ndim))
    mean = jnp.mean(grouped, axis=axes, keepdims=True)
    var = jnp.var(grouped, axis=axes, keepdims=True)
    normed = ((grouped - mean) / jnp.sqrt(var + eps)).reshape(n, c, *grouped.shape[3:])
    per_channel = (1, c, *([1] * (normed.ndim - 2)))
    return weight.reshape(per_channel) * normed + bias.reshape(per_channel)


class LayerNorm(Model):
    """:func:`layer_norm` with noised ``weight`` and ``bias`` (``PARAM`` leaves)."""

    @classmethod
    def _forward(cls, common_params, x, eps=1e-5):
        weights = {name: call_submodule(Parameter, name, common_params) for name in ("weight", "bias")}
        return layer_norm(x, weights, eps)


class GroupNorm(Model):
    """:func:`group_norm` with noised ``weight`` and ``bias`` (``PARAM`` leaves)."""

    @classmethod
    def _forward(cls, common_params, x, num_groups, eps):
        weight = call_submodule(Parameter, "weight", common_params)
        bias = call_submodule(Parameter, "bias", common_params)
        return group_norm(x, num_groups, weight, bias, eps)


def _shift_delta(previous, x, new_starts):
    """``x[t-1] - x[t]`` for every ``t`` of ``x (T, C)``, where ``x[-1]`` is ``previous (1, C)`` and a
    token flagged in ``new_starts (T,)`` sees a zero predecessor instead."""
    shifted = jnp.concatenate([previous, x[:-1, :]], dtype=x.dtype)
    shifted = jnp.where(new_starts[:, None], jnp.zeros_like(shifted), shifted)
    return shifted - x


def _lerp(common_params, name, x, delta):
    """``x + delta * mix`` with the noised mixing vector ``name``: the token-shift interpolation."""
    return x + delta * call_submodule(Parameter, name, common_params)


class ChannelMixing(Model):
    """RWKV-7's feed-forward: ``value(relu(key(lerp(x)))**2)``."""

    @classmethod
    def _forward(cls, common_params, x, state, length, new_starts):
        """``x (T, C)``, ``state (1, C)``: the previous call's last input. Returns the output
        ``(T, C)`` and ``x[length - 1]`` (shape ``(C,)``), the next call's token-shift input."""
        xk = _lerp(common_params, "x_k", x, _shift_delta(state, x, new_starts))
        hidden = jnp.square(jax.nn.relu(call_submodule(Linear, "key", common_params, xk)))
        return call_submodule(Linear, "value", common_params, hidden), x[length - 1]


def _low_rank(common_params, first, second, x, inner=None):
    """``second(inner(first(x)))`` with both ``TMM`` matrices noised (``inner`` optional)."""
    hidden = call_submodule(TMM, first, common_params, x)
    if inner is not None:
        hidden = inner(hidden)
    return call_submodule(TMM, second, common_params, hidden)


class TimeMixing(Model):
    """RWKV-7's attention replacement: a per-head ``S x S`` matrix state updated by a generalised
    delta rule, read out by the receptance."""

    @classmethod
    def _forward(cls, common_params, x, state, v_first, length, new_starts, H, S, layer_id, inner_loop):
        """One layer over ``x (T, C)``.

        ``state (1 + S, C)``: row 0 the previous call's last input, rows ``1:`` the WKV matrices.
        ``v_first (T, C)``: layer 0's values (layer 0 ignores what it is given and returns its own);
        later layers mix their values towards it. ``layer_id``: int or traced scalar.
        ``inner_loop(r, w, k, v, a, b, s, length, new_starts) -> (s, out)`` runs the recurrence on
        ``(T, H, S)`` inputs (``w`` still the log-log decay) and ``s (H, S, S)``.
        Returns the output ``(T, C)``, the new state ``(1 + S, C)`` and ``v_first``.
        """
        n_tokens, n_embd = x.shape
        delta = _shift_delta(state[:1], x, new_starts)
        xr, xw, xk, xv, xa, xg = (_lerp(common_params, f"x_{c}", x, delta) for c in "rwkvag")

        r = call_submodule(Linear, "receptance", common_params, xr)
        # w is log(-log(decay)): the decay exp(-exp(w)) lies in (exp(-exp(-0.5)), 1).
        w = -jax.nn.softplus(-(call_submodule(Parameter, "w0", common_params)
                               + _low_rank(common_params, "w1", "w2", xw, jnp.tanh))) - 0.5
        k = call_submodule(Linear, "key", common_params, xk)
        v = call_submodule(Linear, "value", common_params, xv)

        # Value residual: layer 0 publishes its values; the others blend towards them.
        v_first = jnp.where(layer_id == 0, v, v_first)
        v_gate = jax.nn.sigmoid(call_submodule(Parameter, "v0", common_params)
                                + _low_rank(common_params, "v1", "v2", xv))
        v = jnp.where(layer_id == 0, v, v + (v_first - v) * v_gate)

        a = jax.nn.sigmoid(call_submodule(Parameter, "a0", common_params) + _low_rank(common_params, "a1", "a2", xa))
        g = _low_rank(common_params, "g1", "g2", xg, jax.nn.sigmoid)

        # Removal key: per-head unit vector of k * k_k (norm floored at 1e-12).
        kk = (k * call_submodule(Parameter, "k_k", common_params)).reshape(n_tokens, H, -1)
        kk = (kk / jnp.maximum(jnp.linalg.norm(kk, axis=-1, keepdims=True), 1e-12)).reshape(n_tokens, n_embd)
        k = k * (1 + (a - 1) * call_submodule(Parameter, "k_a", common_params))

        state = state.at[0].set(x[length - 1])
        heads = [val.reshape(n_tokens, H, S) for val in (r, w, k, v, -kk, kk * a)]
        wkv, out = inner_loop(*heads, jnp.reshape(state[1:, :], (H, S, S)), length, new_starts)
        state = state.at[1:].set(wkv.reshape(S, -1))
        r, k, v = heads[0], heads[2], heads[3]

        x = call_submodule(GroupNorm, "ln_x", common_params, out.reshape(n_tokens, H * S), H, _LN_X_EPS)
        # Bonus term: each head's current value weighted by r . (k * r_k).
        bonus = jnp.sum(r.reshape(1, n_tokens, H, -1) * k.reshape(1, n_tokens, H, -1)
                        * call_submodule(Parameter, "r_k", common_params), axis=-1, keepdims=True)
        x = x + (bonus * v.reshape(1, n_tokens, H, -1)).reshape(n_tokens, n_embd)
        return call_submodule(Linear, "output", common_params, x * g), state, v_first


def _wkv_step(s, w_t, k_t, v_t, a_t, b_t, r_t):
    """One token of the recurrence for all heads: ``s (H, S, S)``, the rest ``(H, S)``, ``w_t`` the
    decay. ``s' = s * w_t[None] + v_t k_t^T + (s a_t) b_t^T`` (kept in ``s``'s dtype) and the
    readout ``s' r_t`` in ``r_t``'s dtype."""
    removed = s @ a_t[:, :, None]
    s = jnp.astype(s * w_t[:, None, :] + v_t[:, :, None] @ k_t[:, None, :] + removed @ b_t[:, None, :], s.dtype)
    return s, jnp.astype((s @ r_t[:, :, None]).squeeze(2), r_t.dtype)


class BaseRWKV(LLM):
    """RWKV-7 with a ``lax.scan`` over layers and a Python loop over tokens."""

    @classmethod
    def transform_torch_model(cls, torch_model, dtype=jnp.bfloat16):
        """Official RWKV-7 state dict -> the layout :meth:`load_from_torch` nests, changed IN PLACE
        (and returned); ``dtype`` is unused.

        ``blocks.0.ln0`` moves to top-level ``ln0`` (other layers' ``ln0`` are dropped); layer 0's
        ``att.v0/v1/v2`` (absent in official checkpoints, as layer 0 has no value residual) are
        set to zeros shaped like layer 1's, so the model needs at least two layers; tensors whose
        key contains ``.x_``, ``.k_``, ``.a0``, ``.v0`` or ``.w0`` are squeezed from ``(1, 1, C)``
        to ``(C,)``.
        """
        import torch

        w = torch_model
        for part in ("weight", "bias"):
            w[f"ln0.{part}"] = w.pop(f"blocks.0.ln0.{part}")
        for name in ("v0", "v1", "v2"):
            w[f"blocks.0.att.{name}"] = torch.zeros_like(w[f"blocks.1.att.{name}"])
        for name in list(w):
            if re.match(r"^blocks\.\d+\.ln0\.(weight|bias)$", name):
                del w[name]
            elif any(marker in name for marker in _SQUEEZED):
                w[name] = w[name].squeeze()
        return w

    @classmethod
    def get_scan_map(cls, config):
        """``(0,)`` for every ``blocks`` leaf (stacked over layers), ``()`` for the rest."""
        return cls._per_leaf(stacked=(0,), unstacked=(), low_rank=(0,), embedding=())

    @classmethod
    def get_es_map(cls, config):
        """``MM_PARAM`` for every matrix used in a product (Linear weights and the low-rank pairs),
        ``PARAM`` for vectors and norms (``r_k`` too, although it is a matrix), ``EXCLUDED`` for
        ``emb`` and ``head``."""
        return cls._per_leaf(stacked=PARAM, unstacked=PARAM, low_rank=MM_PARAM, embedding=EXCLUDED)

    @classmethod
    def _per_leaf(cls, stacked, unstacked, low_rank, embedding):
        """A tree shaped like the params with one value per leaf kind: ``low_rank`` for matrices
        used in products, ``stacked`` for the other per-layer leaves, ``unstacked`` for ``ln0``
        and ``ln_out``, ``embedding`` for ``emb`` and ``head``."""
        norm = {"bias": stacked, "weight": stacked}
        att = {name: stacked for name in _ATT_VECTORS} | {name: low_rank for name in _ATT_LOW_RANK}
        att |= {name: {"weight": low_rank} for name in _ATT_LINEARS} | {"ln_x": dict(norm)}
        ffn = {"key": {"weight": low_rank}, "value": {"weight": low_rank}, "x_k": stacked}
        return {
            "blocks": {"att": att, "ffn": ffn, "ln1": dict(norm), "ln2": dict(norm)},
            "emb": {"weight": embedding},
            "head": {"weight": embedding},
            "ln0": {"bias": unstacked, "weight": unstacked},
            "ln_out": {"bias": unstacked, "weight": unstacked},
        }

    @classmethod
    def default_state(cls, params, config):
        """Zeros of shape ``(n_layer, 2 + head_size, n_embd)`` in the embedding's dtype."""
        n_embd = params["emb"]["weight"].shape[1]
        n_layer = params["blocks"]["att"]["r_k"].shape[0]
        head_size = params["blocks"]["att"]["r_k"].shape[2]
        return jnp.zeros((n_layer, 2 + head_size, n_embd), dtype=params["emb"]["weight"].dtype)

    @classmethod
    def embed(cls, common_params, tokens):
        """Rows of ``emb.weight`` for the flattened ``tokens``, read without noise: ``(T, C)``."""
        return common_params.params["emb"]["weight"][tokens.ravel()]

    @classmethod
    def outhead(cls, common_params, x):
        """``ln_out`` (noised) then the un-noised ``head``: ``(T, C) -> (T, V)``."""
        x = call_submodule(LayerNorm, "ln_out", common_params, x)
        return x @ common_params.params["head"]["weight"].T

    @classmethod
    def inner_loop(cls, r, w, k, v, a, b, s, length, new_starts):
        """The WKV recurrence token by token (unrolled in Python).

        ``r, w, k, v, a, b (T, H, S)`` with ``w`` the log-log decay, ``s (H, S, S)``. Before token
        ``t`` the state is zeroed if ``new_starts[t]``. Returns the state after token ``length - 1``
        (``s`` itself when ``length <= 0``), in ``s``'s dtype, and the readouts ``(T, H, S)``.
        """
        w = jnp.exp(-jnp.exp(w))
        out = jnp.empty_like(r)
        kept = s
        zeros = jnp.zeros_like(s)
        for t in range(r.shape[0]):
            s = jax.lax.select(new_starts[t], zeros, s)
            s, out_t = _wkv_step(s, w[t], k[t], v[t], a[t], b[t], r[t])
            out = out.at[t].set(out_t)
            kept = jax.lax.select(t < length, s, kept)
        return kept, out

    @classmethod
    def _block(cls, block, x, v_first, state, layer_id, length, new_starts, n_head, head_size):
        """One residual layer (time mixing, then channel mixing) on its own params/keys ``block``
        and state ``(2 + head_size, C)``; returns ``x``, ``v_first`` and the layer's new state."""
        att_in = call_submodule(LayerNorm, "ln1", block, x)
        x_new, s, v_first = call_submodule(TimeMixing, "att", block, att_in, state[1:], v_first, length,
                                           new_starts, n_head, head_size, layer_id, cls.inner_loop)
        state = state.at[1:].set(s)
        x = x + x_new
        x_new, s = call_submodule(ChannelMixing, "ffn", block, call_submodule(LayerNorm, "ln2", block, x),
                                  state[:1], length, new_starts)
        return x + x_new, v_first, state.at[0].set(s)

    @classmethod
    def forward_seq(cls, common_params, x, state, length, new_starts):
        """``ln0`` then every layer over ``x (T, C)`` with ``state (L, 2 + S, C)``; returns the
        features ``(T, C)`` (before ``ln_out``) and the new state.

        The layers run as a ``lax.scan`` over the stacked ``blocks`` params and keys, the state and
        the layer index; the step is rematerialised under differentiation, saving only
        non-batched matmul outputs.
        """
        r_k = common_params.params["blocks"]["att"]["r_k"]
        n_head, head_size = r_k.shape[1:]
        x = call_submodule(LayerNorm, "ln0", common_params, x)

        @partial(jax.checkpoint, policy=jax.checkpoint_policies.dots_with_no_batch_dims_saveable)
        def layer(carry, inputs):
            params_i, keys_i, state_i, layer_id = inputs
            block = common_params._replace(params=params_i, es_tree_key=keys_i)
            y, v_first, state_i = cls._block(block, *carry, state_i, layer_id, length, new_starts, n_head,
                                             head_size)
            return (y, v_first), state_i

        blocks = common_params.params["blocks"]
        (x, _), state = jax.lax.scan(layer, (x, x), (blocks, common_params.es_tree_key["blocks"], state,
                                                     jnp.arange(r_k.shape[0])))
        return x, state


class ScanRWKV(BaseRWKV):
    """:class:`BaseRWKV` with the token recurrence as a ``lax.scan`` (``unroll=64``)."""

    @classmethod
    def inner_loop(cls, r, w, k, v, a, b, s, length, new_starts):
        """As :meth:`BaseRWKV.inner_loop`; both results are cast to ``r``'s dtype."""
        w = jnp.exp(-jnp.exp(w))
        zeros = jnp.zeros_like(s)

        def step(carry, inputs):
            kept, s = carry
            r_t, w_t, k_t, v_t, a_t, b_t, t = inputs
            s = jax.lax.select(new_starts[t], zeros, s)
            s, out_t = _wkv_step(s, w_t, k_t, v_t, a_t, b_t, r_t)
            return (jax.lax.select(t < length, s, kept), s), out_t

        (kept, _), out = jax.lax.scan(step, (s, s), (r, w, k, v, a, b, jnp.arange(r.shape[0])), unroll=64)
        return jnp.astype(kept, r.dtype), jnp.astype(out, r.dtype)


class AssociativeScanRWKV(BaseRWKV):
    """:class:`BaseRWKV` with the token recurrence as a ``lax.associative_scan`` over the affine
    maps ``s -> s @ (diag(w_t) + a_t b_t^T) + v_t k_t^T``."""

    @classmethod
    def inner_loop(cls, r, w, k, v, a, b, s, length, new_starts):
        """As :meth:`BaseRWKV.inner_loop` (results in ``r``'s dtype) except at resets: a flag
        ``new_starts[t]`` zeroes the map of token ``t - 1`` (or the initial state when ``t == 0``),
        so for ``t > 0`` the readout of token ``t - 1`` is zero, and so is the returned state when
        ``length == t``; the readouts from token ``t`` on match the sequential loops.
        ``length`` must lie in ``[0, T]`` (it indexes the ``T + 1`` prefix states)."""
        w = jnp.exp(-jnp.exp(w))
        transitions = jax.vmap(jax.vmap(lambda w_i, a_i, b_i: jnp.diag(w_i) + jnp.outer(a_i, b_i)))(w, a, b)
        inputs = jax.vmap(jax.vmap(jnp.outer))(v, k)
        # Element 0 is the initial state with a zero map; element t + 1 is token t.
        all_inputs = jnp.concatenate((s[None], inputs), dtype=r.dtype)
        all_transitions = jnp.concatenate((jnp.zeros_like(transitions[0:1]), transitions))
        reset = jnp.concatenate((new_starts, jnp.zeros_like(new_starts[:1])))[:, None, None, None]
        all_inputs = jnp.where(reset, jnp.zeros_like(all_inputs), all_inputs)
        all_transitions = jnp.where(reset, jnp.zeros_like(all_transitions), all_transitions)

        def compose(first, second):
            input_1, map_1 = first
            input_2, map_2 = second
            return input_2 + input_1 @ map_2, map_1 @ map_2

        prefix_states, _ = jax.lax.associative_scan(compose, (all_inputs, all_transitions))
        out = (prefix_states[1:] @ jnp.expand_dims(r, -1)).squeeze(-1)
        return jnp.astype(prefix_states[length], r.dtype), jnp.astype(out, r.dtype)


class FastRWKV(BaseRWKV):
    """:class:`BaseRWKV` with the layers unrolled in Python (no ``lax.scan``, no remat)."""

    @classmethod
    def forward_seq(cls, common_params, x, state, length, new_starts):
        """As :meth:`BaseRWKV.forward_seq`, with a Python loop over the layers."""
        r_k = common_params.params["blocks"]["att"]["r_k"]
        n_head, head_size = r_k.shape[1:]
        x = call_submodule(LayerNorm, "ln0", common_params, x)
        v_first = x
        for i in range(r_k.shape[0]):
            block = common_params._replace(
                params=jax.tree.map(lambda leaf: leaf[i], common_params.params["blocks"]),
                es_tree_key=jax.tree.map(lambda leaf: leaf[i], common_params.es_tree_key["blocks"]),
            )
            x, v_first, state_i = cls._block(block, x, v_first, state[i], i, length, new_starts, n_head, head_size)
            state = state.at[i].set(state_i)
        return x, state
