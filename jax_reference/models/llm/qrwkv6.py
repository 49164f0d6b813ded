"""QRWKV6: a Qwen2 decoder whose softmax attention is replaced by RWKV-6 style linear attention, over
one stream of tokens, with every weight use routed through the noiser.

Params (after :meth:`BaseRWKV.load_from_torch` of a Hugging Face ``RWKV6Qwen2ForCausalLM``
``state_dict()``, e.g. ``recursal/QRWKV6-7B-Base`` with ``config = {"head_size": 128}``), with
``C = n_embd``, ``S = config["head_size"]``, ``H = C // S`` heads, ``K`` key/value heads (grouped
query attention, ``H`` a multiple of ``K``), ``L`` layers, ``V`` the vocabulary, ``F`` the MLP width,
``D`` and ``E`` the token-shift and decay low-rank widths:

- ``embed_tokens.weight (V, C)`` and ``lm_head.weight (V, C)``: read directly, never noised
  (``EXCLUDED``); ``norm.weight (C,)``: the final RMSNorm.
- ``blocks``: every leaf stacked over layers (leading axis ``L``):
  ``input_layernorm``, ``post_attention_layernorm`` (RMSNorm ``weight (C,)``);
  ``mlp``: ``gate_proj``, ``up_proj`` (``weight (F, C)``), ``down_proj`` (``weight (C, F)``);
  ``self_attn``: ``q_proj`` (``weight (C, C)``, ``bias (C,)``), ``k_proj``, ``v_proj``
  (``weight (K*S, C)``, ``bias (K*S,)``), ``o_proj``, ``gate`` (``weight (C, C)``, no bias), all
  applied as ``x @ W.T``; token-shift mixes ``time_maa_x, time_maa_r, time_maa_k, time_maa_v,
  time_maa_w, time_maa_g (C,)``; the data-dependent mix ``time_maa_w1 (C, 5*D)`` (applied as
  ``x @ W``) and ``time_maa_w2 (5, D, C)`` (stacked over ``(L, 5)``, never noised, never
  updated); the decay ``time_decay (C,)`` with ``time_decay_w1 (C, E)``, ``time_decay_w2 (E, C)``.

Recurrent state, one array of shape ``(L, 1 + S, C)`` in the embedding's dtype: per layer, row 0 is
the attention's token-shift input (the last ``input_layernorm`` output), rows ``1:`` the ``H``
state matrices ``(H, S, S)`` stored by a plain reshape to ``(S, C)`` (which needs ``H * S == C``).
A state matrix is indexed ``[key channel, value channel]``; the MLP keeps no state.

Per token the attention is gated linear attention without a bonus term: with ``d_t = clip(-exp(w_t),
-5)`` the log decay per key channel, ``k_t`` scaled by ``1 - exp(d_t)``, ``s_t = diag(exp(d_t)) s_{t-1}
+ k_t v_t^T`` and the readout ``(r_t * S**-0.5) s_t``, gated by ``sigmoid(gate(x))``.

:class:`BaseRWKV` runs the layers as a ``lax.scan`` (rematerialised under differentiation);
:class:`FastRWKV` unrolls them in Python. Both run the tokens as a Python loop.
"""
from functools import partial

import jax
import jax.numpy as jnp

from ..base_model import Model
from ..common import EXCLUDED, MM_PARAM, PARAM, TMM, Linear, Parameter, call_submodule
from .llm import LLM

__all__ = ["Qwen2RMSNorm", "Qwen2MLP", "RWKV6Attention", "BaseRWKV", "FastRWKV"]

# Attention leaves that are vectors used elementwise (full noise), the token-shift/decay low-rank
# matrices applied with TMM, and the projections applied with Linear (True: the projection has a bias).
_ATT_VECTORS = ("time_decay", "time_maa_g", "time_maa_k", "time_maa_r", "time_maa_v", "time_maa_w", "time_maa_x")
_ATT_LOW_RANK = ("time_decay_w1", "time_decay_w2", "time_maa_w1")
_ATT_LINEARS = {"gate": False, "k_proj": True, "o_proj": False, "q_proj": True, "v_proj": True}
_MLP_LINEARS = ("down_proj", "gate_proj", "up_proj")
# The five data-dependent mixes come out of time_maa_w2 in this order (not RWKV-6's w, k, v, r, g).
_MIX_ORDER = "rkvwg"
# Floor of the log decay: a channel keeps at least exp(-5) of its state per token.
_LOG_DECAY_FLOOR = -5.0


class Qwen2RMSNorm(Model):
    """``weight * x / sqrt(mean(x**2) + eps)`` over the last axis, in ``x``'s own dtype (no float32
    upcast), with a noised ``weight`` (``PARAM``)."""

    @classmethod
    def _forward(cls, common_params, x, eps=1e-6):
        variance = jnp.mean(x ** 2, axis=-1, keepdims=True)
        normed = x * jax.lax.rsqrt(variance + eps)
        return call_submodule(Parameter, "weight", common_params) * normed


class Qwen2MLP(Model):
    """Qwen2's gated feed-forward ``down(silu(gate(x)) * up(x))``, no biases: ``(T, C) -> (T, C)``."""

    @classmethod
    def _forward(cls, common_params, x):
        gated = jax.nn.silu(call_submodule(Linear, "gate_proj", common_params, x))
        return call_submodule(Linear, "down_proj", common_params, gated * call_submodule(Linear, "up_proj",
                                                                                           common_params, x))


class RWKV6Attention(Model):
    """RWKV-6 time mixing in Qwen2's attention slot: data-dependent token shift, per-channel
    data-dependent decay, grouped key/value heads, a sigmoid output gate and no bonus term."""

    @classmethod
    def _forward(cls, common_params, x, state, length, new_starts, H, S, inner_loop):
        """One layer over ``x (T, C)``.

        ``state (1 + S, C)``: row 0 the previous call's last input (the token-shift input of token
        0 unless ``new_starts[0]``), rows ``1:`` the state matrices. ``H`` heads of size ``S``;
        ``k_proj``/``v_proj`` may have fewer heads, each then serving ``H // K`` consecutive query
        heads. ``inner_loop(r, k, v, w, time_first, s, length, new_starts) -> (s, out)`` runs the
        recurrence on ``(T, H, S)`` inputs, the log decay ``w (T, H, S, 1)``, ``time_first=None``
        and ``s (H, S, S)``. Returns the output ``(T, C)`` and the new state ``(1 + S, C)``, whose
        row 0 is ``x[length - 1]``.
        """
        n_tokens, _ = x.shape
        shifted = jnp.concatenate([state[:1], x[:-1, :]], dtype=x.dtype)
        shifted = jnp.where(new_starts[:, None], jnp.zeros_like(shifted), shifted)
        delta = shifted - x

        # Five data-dependent mix offsets from one low-rank projection: (5, T, C).
        mixed = x + delta * call_submodule(Parameter, "time_maa_x", common_params)
        mixed = jnp.tanh(call_submodule(TMM, "time_maa_w1", common_params, mixed))
        mixed = mixed.reshape(n_tokens, len(_MIX_ORDER), -1).transpose(1, 0, 2)
        # time_maa_w2 is read raw: its es_map entry is EXCLUDED, so no noiser call.
        offsets = jax.vmap(lambda a, b: a @ b)(mixed, common_params.params["time_maa_w2"])
        offsets = offsets.reshape(len(_MIX_ORDER), n_tokens, -1)
        xr, xk, xv, xw, xg = (
            x + delta * (call_submodule(Parameter, f"time_maa_{name}", common_params) + offset)
            for name, offset in zip(_MIX_ORDER, offsets)
        )
        state = state.at[0].set(x[length - 1])

        r = jnp.reshape(call_submodule(Linear, "q_proj", common_params, xr), (n_tokens, H, S))
        k = jnp.reshape(call_submodule(Linear, "k_proj", common_params, xk), (n_tokens, -1, S))
        v = jnp.reshape(call_submodule(Linear, "v_proj", common_params, xv), (n_tokens, -1, S))
        time_decay = call_submodule(Parameter, "time_decay", common_params).reshape(1, H, S, 1)
        decay_lora = call_submodule(TMM, "time_decay_w2", common_params,
                                    jnp.tanh(call_submodule(TMM, "time_decay_w1", common_params, xw)))
        w = time_decay + decay_lora.reshape(n_tokens, H, S, 1)
        g = jax.nn.sigmoid(call_submodule(Linear, "gate", common_params, xg))

        group = r.shape[-2] // k.shape[-2]
        k = jnp.repeat(k, group, axis=-2)
        v = jnp.repeat(v, group, axis=-2)

        log_w = jnp.clip(-jnp.exp(w), min=_LOG_DECAY_FLOOR)
        # What a token writes is scaled by the share of the state its decay lets go.
        k = k * (1 - jnp.exp(log_w[:, :, :, 0]))

        wkv, out = inner_loop(r, k, v, log_w, None, jnp.reshape(state[1:, :], (H, S, S)), length, new_starts)
        state = state.at[1:].set(wkv.reshape(S, -1))
        return call_submodule(Linear, "o_proj", common_params, out.reshape(n_tokens, H * S) * g), state


class BaseRWKV(LLM):
    """QRWKV6 with a ``lax.scan`` over layers and a Python loop over tokens."""

    @classmethod
    def transform_torch_model(cls, torch_model, dtype=jnp.bfloat16):
        """Hugging Face state dict -> the layout :meth:`load_from_torch` nests, changed IN PLACE (and
        returned); ``dtype`` is unused.

        Every key loses each ``"model."`` and has each ``"layers."`` turned into ``"blocks."``
        (``model.layers.3.mlp.up_proj.weight -> blocks.3.mlp.up_proj.weight``, ``lm_head.weight``
        unchanged); a renamed key moves to the end of the dict. Every tensor whose key contains
        ``time_`` is squeezed (all its size-1 axes), which turns the ``(1, 1, C)`` mixes and decay
        into ``(C,)``.
        """
        w = torch_model
        for name in list(w):
            renamed = name.replace("model.", "").replace("layers.", "blocks.")
            if "time_" in renamed:
                w[name] = w[name].squeeze()
            if renamed != name:
                w[renamed] = w[name]
                del w[name]
        return w

    @classmethod
    def get_scan_map(cls, config):
        """``(0,)`` for every ``blocks`` leaf except ``time_maa_w2``, which is ``(0, 1)`` (one key
        per layer and per mix); ``()`` for ``embed_tokens``, ``lm_head`` and ``norm``."""
        return cls._per_leaf(vector=(0,), matrix=(0,), mix_out=(0, 1), top_vector=(), table=())

    @classmethod
    def get_es_map(cls, config):
        """``MM_PARAM`` for the projection weights and the low-rank matrices except ``time_maa_w2``
        (``EXCLUDED``), ``PARAM`` for biases, norms, mixes and ``time_decay``, ``EXCLUDED`` for
        ``embed_tokens`` and ``lm_head``."""
        return cls._per_leaf(vector=PARAM, matrix=MM_PARAM, mix_out=EXCLUDED, top_vector=PARAM, table=EXCLUDED)

    @classmethod
    def _per_leaf(cls, vector, matrix, mix_out, top_vector, table):
        """A tree shaped like the params with one value per leaf kind: ``matrix`` for matrices used
        in products, ``vector`` for the other per-layer leaves, ``mix_out`` for ``time_maa_w2``,
        ``top_vector`` for ``norm`` and ``table`` for ``embed_tokens`` and ``lm_head``."""
        attn = {name: vector for name in _ATT_VECTORS} | {name: matrix for name in _ATT_LOW_RANK}
        attn |= {name: {"weight": matrix} | ({"bias": vector} if biased else {})
                 for name, biased in _ATT_LINEARS.items()}
        attn["time_maa_w2"] = mix_out
        return {
            "blocks": {
                "input_layernorm": {"weight": vector},
                "mlp": {name: {"weight": matrix} for name in _MLP_LINEARS},
                "post_attention_layernorm": {"weight": vector},
                "self_attn": attn,
            },
            "embed_tokens": {"weight": table},
            "lm_head": {"weight": table},
            "norm": {"weight": top_vector},
        }

    @classmethod
    def default_state(cls, params, config):
        """Zeros of shape ``(n_layer, 1 + config["head_size"], n_embd)`` in the embedding's dtype."""
        emb = params["embed_tokens"]["weight"]
        n_layer = params["blocks"]["input_layernorm"]["weight"].shape[0]
        return jnp.zeros((n_layer, 1 + config["head_size"], emb.shape[1]), dtype=emb.dtype)

    @classmethod
    def embed(cls, common_params, tokens):
        """Rows of ``embed_tokens.weight`` for the flattened ``tokens``, read without noise: ``(T, C)``."""
        return common_params.params["embed_tokens"]["weight"][tokens.ravel()]

    @classmethod
    def outhead(cls, common_params, x):
        """The final RMSNorm ``norm`` (noised) then the un-noised ``lm_head``: ``(T, C) -> (T, V)``."""
        x = call_submodule(Qwen2RMSNorm, "norm", common_params, x)
        return x @ common_params.params["lm_head"]["weight"].T

    @classmethod
    def inner_loop(cls, r, k, v, w, time_first, s, length, new_starts):
        """The gated linear attention recurrence token by token (unrolled in Python).

        ``r, k, v (T, H, S)``, ``w (T, H, S, 1)`` the log decay per key channel, ``s (H, S, S)``
        indexed ``[key, value]``; ``time_first`` is ignored (QRWKV6 has no bonus). Before token
        ``t`` the state is zeroed if ``new_starts[t]``; then ``s = k_t v_t^T + exp(w_t) * s`` (in
        ``r``'s dtype) and the readout is ``(r_t * S**-0.5) @ s``. Returns the state after token
        ``length - 1`` (``s`` itself when ``length <= 0``) and the readouts ``(T, H, S)``.
        """
        scale = r.shape[-1] ** -0.5
        w = jnp.exp(w)
        out = jnp.empty_like(r)
        kept = s
        zeros = jnp.zeros_like(s)
        for t in range(r.shape[0]):
            s = jax.lax.select(new_starts[t], zeros, s)
            r_t = jnp.expand_dims(r[t], 1) * scale
            written = jnp.expand_dims(k[t], 2) * jnp.expand_dims(v[t], 1)
            s = jnp.astype(written + w[t] * s, r.dtype)
            out = out.at[t].set((r_t @ s).squeeze(1))
            kept = jax.lax.select(t < length, s, kept)
        return kept, out

    @classmethod
    def _block(cls, block, x, state, length, new_starts, n_head, head_size):
        """One decoder layer (RMSNorm, attention, residual; RMSNorm, MLP, residual) on its own
        params/keys ``block`` and state ``(1 + head_size, C)``; returns ``x`` and the new state."""
        hidden = call_submodule(Qwen2RMSNorm, "input_layernorm", block, x)
        hidden, state = call_submodule(RWKV6Attention, "self_attn", block, hidden, state, length, new_starts,
                                       n_head, head_size, cls.inner_loop)
        x = x + hidden
        hidden = call_submodule(Qwen2RMSNorm, "post_attention_layernorm", block, x)
        return x + call_submodule(Qwen2MLP, "mlp", block, hidden), state

    @classmethod
    def _heads(cls, common_params):
        """``(n_head, head_size)``: ``head_size`` from the frozen config, ``n_head = n_embd // head_size``."""
        head_size = common_params.frozen_params["head_size"]
        return common_params.params["embed_tokens"]["weight"].shape[1] // head_size, head_size

    @classmethod
    def forward_seq(cls, common_params, x, state, length, new_starts):
        """Every layer over ``x (T, C)`` with ``state (L, 1 + S, C)``; returns the features
        ``(T, C)`` (before the final norm) and the new state.

        The layers run as a ``lax.scan`` over the stacked ``blocks`` params and keys and the state;
        the step is rematerialised under differentiation, saving only non-batched matmul outputs.
        """
        n_head, head_size = cls._heads(common_params)

        @partial(jax.checkpoint, policy=jax.checkpoint_policies.dots_with_no_batch_dims_saveable)
        def layer(x, inputs):
            params_i, keys_i, state_i = inputs
            block = common_params._replace(params=params_i, es_tree_key=keys_i)
            return cls._block(block, x, state_i, length, new_starts, n_head, head_size)

        return jax.lax.scan(layer, x, (common_params.params["blocks"], common_params.es_tree_key["blocks"], state))


class FastRWKV(BaseRWKV):
    """:class:`BaseRWKV` with the layers unrolled in Python (no ``lax.scan``, no remat)."""

    @classmethod
    def forward_seq(cls, common_params, x, state, length, new_starts):
        """As :meth:`BaseRWKV.forward_seq`, with a Python loop over the layers."""
        n_head, head_size = cls._heads(common_params)
        for i in range(common_params.params["blocks"]["input_layernorm"]["weight"].shape[0]):
            block = common_params._replace(
                params=jax.tree.map(lambda leaf: leaf[i], common_params.params["blocks"]),
                es_tree_key=jax.tree.map(lambda leaf: leaf[i], common_params.es_tree_key["blocks"]),
            )
            x, state_i = cls._block(block, x, state[i], length, new_starts, n_head, head_size)
            state = state.at[i].set(state_i)
        return x, state
