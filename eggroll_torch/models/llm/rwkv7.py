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

Recurrent state, one tensor of shape ``(L, 2 + S, C)`` (``(N, L, 2 + S, C)`` for a population):
per layer, row 0 is the channel mixing's token-shift input (the last ``ln2`` output), row 1 the
time mixing's token-shift input (the last ``ln1`` output), rows ``2:`` the ``H`` WKV matrices
``(H, S, S)`` stored by a plain reshape to ``(S, C)``. A WKV matrix is indexed ``[value channel,
key channel]``.

Activations are ``(..., T, C)``: no leading axis for one member, the member axis ``N`` for a
population (where the noiser hands back per-member parameters ``(N, *shape)``), so a whole
population runs at once instead of under ``vmap``.

The four models differ only in how the reference runs the recurrence. Here :class:`BaseRWKV` loops
over layers and tokens in Python; :class:`ScanRWKV` and :class:`FastRWKV` are the same sequential
recurrence (ScanRWKV casts its results to the activations' dtype, as the reference does);
:class:`AssociativeScanRWKV` composes the per-token affine maps, with the reference's reset
semantics (which differ from the others').
"""
from __future__ import annotations

import re

import torch

from ... import tree
from ...numerics import divide_by_broadcast, mean, sqrt, var, weak_scalar
from ...random.triton_support import triton_usable
from ..base_model import Model
from ..common import (EXCLUDED, MM_PARAM, PARAM, TMM, Linear, Parameter, _align_members, _fused_add_standardize,
                      _fused_standardize)
from .. import common
from ..common import call_submodule, submodule
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


def _param(common_params, name, like):
    """The noised leaf ``name``, with a population's member axis lined up with ``like (N, ...)``."""
    value = call_submodule(Parameter, name, common_params)
    return _align_members(value, common_params.params[name], like)


def layer_norm(x, w, eps=1e-5):
    """LayerNorm over the last axis of ``x`` with ``w = {"weight": ..., "bias": ...}``
    (population variance, ``eps`` inside the square root); ``w``'s tensors broadcast against
    ``x``. On CUDA one kernel with the scale and shift (``common._fused_standardize``) where it
    takes them."""
    fused = _fused_standardize(x, eps, w["weight"], w["bias"])
    return _standardize(x, eps) * w["weight"] + w["bias"] if fused is None else fused


def _group_standardize(x, num_groups, eps):
    """``x (N, C, *rest)`` with axis 1 split into ``num_groups`` groups, each standardised over its
    channels and ``rest`` (population variance, ``eps`` inside the square root); on CUDA one
    kernel when there is no ``rest`` (``common._fused_standardize``)."""
    n, c = x.shape[:2]
    grouped = x.reshape(n, num_groups, c // num_groups, *x.shape[2:])
    if x.ndim == 2:
        fused = _fused_standardize(grouped, eps)
        if fused is not None:
            return fused.reshape(x.shape)
    axes = (2, *range(3, grouped.ndim))
    spread = sqrt(var(grouped, axes, keepdim=True) + weak_scalar(eps, grouped))
    return divide_by_broadcast(grouped - mean(grouped, axes, keepdim=True), spread).reshape(n, c, *x.shape[2:])


def group_norm(x, num_groups, weight, bias, eps):
    """GroupNorm of ``x (N, C, *rest)``: axis 1 is split into ``num_groups`` groups of ``C //
    num_groups`` channels, each standardised over its channels and ``rest`` (population
    variance); then ``weight``/``bias (C,)`` scale and shift per channel."""
    normed = _group_standardize(x, num_groups, eps)
    per_channel = (1, x.shape[1], *([1] * (normed.ndim - 2)))
    return weight.reshape(per_channel) * normed + bias.reshape(per_channel)


def add_layer_norm(x, residual, w, eps=1e-5):
    """``(x + residual, layer_norm(x + residual, w, eps))``: a residual stream's sum and its
    LayerNorm; on CUDA one kernel (``common._fused_add_standardize``) where it takes them."""
    fused = _fused_add_standardize(x, residual, eps, w["weight"], w["bias"])
    if fused is not None:
        return fused
    total = x + residual
    return total, layer_norm(total, w, eps)


class LayerNorm(Model):
    """:func:`layer_norm` with noised ``weight`` and ``bias`` (``PARAM`` leaves); given a
    ``residual``, :func:`add_layer_norm`: ``(x + residual, its LayerNorm)``."""

    @classmethod
    def _forward(cls, common_params, x, eps=1e-5, residual=None):
        weights = {name: _param(common_params, name, x) for name in ("weight", "bias")}
        return layer_norm(x, weights, eps) if residual is None else add_layer_norm(x, residual, weights, eps)


class GroupNorm(Model):
    """:func:`group_norm` over channel groups of ``x (..., C)`` (every leading position a sample),
    with noised ``weight`` and ``bias`` (``PARAM`` leaves, per member for a population)."""

    @classmethod
    def _forward(cls, common_params, x, num_groups, eps):
        normed = _group_standardize(x.reshape(-1, x.shape[-1]), num_groups, eps).reshape(x.shape)
        weight = _param(common_params, "weight", x)
        return weight * normed + _param(common_params, "bias", x)


def _shift_delta(previous, x, new_starts):
    """``x[t-1] - x[t]`` for every ``t`` of ``x (..., T, C)``, where ``x[-1]`` is ``previous (..., 1,
    C)`` and a token flagged in ``new_starts`` (``(T,)`` or ``(..., T)``) sees a zero predecessor."""
    shifted = torch.cat([previous.to(x.dtype), x[..., :-1, :]], dim=-2)
    shifted = torch.where(new_starts[..., :, None], torch.zeros_like(shifted), shifted)
    return shifted - x


def _shift_lerps(common_params, names, x, previous, new_starts):
    """The token-shift interpolations ``x + delta * mix`` with ``delta = _shift_delta(previous, x,
    new_starts)``, one for each noised mixing vector of ``names``; on CUDA with Triton (outside
    torch.compile, whose inductor fuses the plain ops itself) one kernel with the same roundings
    (:mod:`.shift_triton`) instead of four launches and two per name."""
    mixes = [_param(common_params, name, x) for name in names]
    if common._own_kernels(x):
        from . import shift_triton

        if shift_triton.supports(x, previous, new_starts, mixes):
            return shift_triton.shift_lerps(x, previous, new_starts, mixes)
    delta = _shift_delta(previous, x, new_starts)
    return [x + delta * mix for mix in mixes]


def _at_length(x, length):
    """``x[..., length - 1, :]``: the input of the last real token (``length == 0`` wraps to the
    last token, as the reference's index does)."""
    return x[..., length - 1, :]


class ChannelMixing(Model):
    """RWKV-7's feed-forward: ``value(relu(key(lerp(x)))**2)``."""

    @classmethod
    def _forward(cls, common_params, x, state, length, new_starts):
        """``x (..., T, C)``, ``state (..., 1, C)``: the previous call's last input. Returns the
        output ``(..., T, C)`` and ``x[..., length - 1, :]`` (``(..., C)``), the next call's
        token-shift input."""
        xk, = _shift_lerps(common_params, ["x_k"], x, state, new_starts)
        hidden = torch.square(torch.relu(call_submodule(Linear, "key", common_params, xk)))
        return call_submodule(Linear, "value", common_params, hidden), _at_length(x, length)


def _low_rank(common_params, first, second, x, inner=None):
    """``second(inner(first(x)))`` with both ``TMM`` matrices noised (``inner`` optional)."""
    hidden = call_submodule(TMM, first, common_params, x)
    if inner is not None:
        hidden = inner(hidden)
    return call_submodule(TMM, second, common_params, hidden)


def _softplus(x):
    """``log(1 + exp(x))`` as ``jax.nn.softplus`` computes it (``logaddexp(x, 0)``, no threshold)."""
    return torch.logaddexp(x, torch.zeros_like(x))


class TimeMixing(Model):
    """RWKV-7's attention replacement: a per-head ``S x S`` matrix state updated by a generalised
    delta rule, read out by the receptance."""

    @classmethod
    def _forward(cls, common_params, x, state, v_first, length, new_starts, H, S, layer_id, inner_loop, *,
                 out=None):
        """One layer over ``x (..., T, C)``.

        ``state (..., 1 + S, C)``: row 0 the previous call's last input, rows ``1:`` the WKV
        matrices. ``v_first (..., T, C)``: layer 0's values (layer 0 ignores what it is given and
        returns its own); later layers mix their values towards it. ``layer_id``: int.
        ``inner_loop(r, w, k, v, a, b, s, length, new_starts) -> (s, out)`` runs the recurrence on
        ``(..., T, H, S)`` inputs (``w`` still the log-log decay) and ``s (..., H, S, S)``.
        Returns the output ``(..., T, C)``, the new state ``(..., 1 + S, C)`` and ``v_first``;
        ``out``, shaped like ``state`` with each member's rows contiguous, receives the new state
        (the one returned) in place of a new tensor, the WKV matrices straight from
        ``inner_loop``.
        """
        lead, (n_tokens, n_embd) = x.shape[:-2], x.shape[-2:]
        xr, xw, xk, xv, xa, xg = _shift_lerps(common_params, [f"x_{c}" for c in "rwkvag"], x, state[..., :1, :],
                                              new_starts)

        r = call_submodule(Linear, "receptance", common_params, xr)
        k = call_submodule(Linear, "key", common_params, xk)
        v = call_submodule(Linear, "value", common_params, xv)
        # The low-rank parts of the decay, the in-context learning rate and (past layer 0) the value
        # gate; _wkv_inputs adds their biases and applies softplus / sigmoid.
        decay_low = _low_rank(common_params, "w1", "w2", xw, torch.tanh)
        rate_low = _low_rank(common_params, "a1", "a2", xa)
        gate_low = None if layer_id == 0 else _low_rank(common_params, "v1", "v2", xv)
        g = _low_rank(common_params, "g1", "g2", xg, torch.sigmoid)

        # Value residual: layer 0 publishes its values; the others blend towards them.
        if layer_id == 0:
            v_first = v
        neg_kk, kk_a, k, w, v = _wkv_inputs(common_params, k, rate_low, decay_low, v,
                                            None if gate_low is None else v_first, gate_low, x, H)
        heads = [val.reshape(*lead, n_tokens, H, S) for val in (r, w, k, v, neg_kk, kk_a)]
        shift = _at_length(x, length)[..., None, :]
        previous = state[..., 1:, :].reshape(*lead, H, S, S)
        if out is None:
            wkv, readout = inner_loop(*heads, previous, length, new_starts)
            state = torch.cat([shift.to(state.dtype), wkv.reshape(*lead, S, n_embd).to(state.dtype)], dim=-2)
        else:
            _, readout = inner_loop(*heads, previous, length, new_starts, out=out[..., 1:, :].view(*lead, H, S, S))
            out[..., :1, :].copy_(shift)
            state = out
        gated = _gated_readout(common_params, readout.reshape(*lead, n_tokens, n_embd), heads[0], heads[2], heads[3], g)
        return call_submodule(Linear, "output", common_params, gated), state, v_first


# Floor of the removal key's per-head norm.
_KK_NORM_FLOOR = 1e-12


def _wkv_inputs(common_params, k, rate_low, decay_low, v, v_first, gate_low, like, n_head):
    """``(-kk, kk * a, k * (1 + (a - 1) * k_a), w, v)``, what the recurrence reads besides ``r``,
    from keys ``k``, values ``v`` and the low-rank parts ``rate_low``, ``decay_low`` and
    ``gate_low`` ``(..., T, C)`` of the learning rate, the decay and the value gate:

    - ``a = sigmoid(a0 + rate_low)``, the in-context learning rate;
    - ``kk``, the removal key, each head's unit vector of ``k * k_k`` (its norm floored at
      ``1e-12``), then the adjusted key;
    - ``w = -softplus(-(w0 + decay_low)) - 0.5``, the log-log decay, so the decay
      ``exp(-exp(w))`` lies in ``(exp(-exp(-0.5)), 1)`` (softplus as ``jax.nn.softplus``:
      ``logaddexp(x, 0)``, no threshold);
    - ``v`` mixed towards ``v_first`` by ``sigmoid(v0 + gate_low)`` when both are given (every
      layer but the first).

    ``k_k``, ``k_a``, ``a0``, ``w0``, ``v0`` are noised and aligned with ``like``. On CUDA with
    Triton (outside torch.compile) one kernel with the same roundings and torch's CUDA formulas
    for the transcendentals (:mod:`.wkv_inputs_triton`; its sum of squares in another order)
    instead of about thirty launches."""
    k_k, k_a, a0, w0 = (_param(common_params, name, like) for name in ("k_k", "k_a", "a0", "w0"))
    v0 = None if gate_low is None else _param(common_params, "v0", like)
    if common._own_kernels(k):
        from . import wkv_inputs_triton

        if wkv_inputs_triton.supports(k, rate_low, a0, k_k, k_a, decay_low, w0, v, v_first, gate_low, v0, n_head):
            return wkv_inputs_triton.wkv_inputs(k, rate_low, a0, k_k, k_a, decay_low, w0, v, v_first, gate_low, v0,
                                                n_head, _KK_NORM_FLOOR)
    return _wkv_inputs_ops(k, rate_low, a0, k_k, k_a, decay_low, w0, v, v_first, gate_low, v0, n_head)


def _wkv_inputs_ops(k, rate_low, a0, k_k, k_a, decay_low, w0, v, v_first, gate_low, v0, n_head):
    """:func:`_wkv_inputs` as the reference's sequence of ops, from the noised vectors."""
    a = torch.sigmoid(a0 + rate_low)
    w = -_softplus(-(w0 + decay_low))
    w = w - weak_scalar(0.5, w)
    if gate_low is not None:
        v = v + (v_first - v) * torch.sigmoid(v0 + gate_low)
    kk = (k * k_k).reshape(*k.shape[:-1], n_head, -1)
    norm = torch.linalg.vector_norm(kk, dim=-1, keepdim=True)
    kk = divide_by_broadcast(kk, torch.maximum(norm, weak_scalar(_KK_NORM_FLOOR, norm))).reshape(k.shape)
    return -kk, kk * a, k * (1 + (a - 1) * k_a), w, v


def _gated_readout(common_params, readout, r, k, v, g):
    """``(ln_x(readout) + bonus * v) * g``: the WKV readout ``(..., T, C)`` normalised per head (the
    ``ln_x`` GroupNorm), plus each head's value ``v`` weighted by the bonus ``sum(r * k * r_k)``
    over the head (``r, k, v (..., T, H, S)``), times the gate ``g (..., T, C)``. On CUDA with
    Triton (outside torch.compile) one kernel with the same roundings (:mod:`.readout_triton`;
    its sums in another order) instead of about a dozen launches."""
    if common._own_kernels(readout):
        from . import readout_triton

        ln_x = submodule(common_params, "ln_x")
        weight, bias = (_param(ln_x, name, readout) for name in ("weight", "bias"))
        r_k = _param(common_params, "r_k", r)
        if readout_triton.supports(readout, weight, bias, r, k, v, r_k, g):
            return readout_triton.gated_readout(readout, weight, bias, r, k, v, r_k, g, _LN_X_EPS)
    x = call_submodule(GroupNorm, "ln_x", common_params, readout, r.shape[-2], _LN_X_EPS)
    # Bonus term: each head's current value weighted by r . (k * r_k).
    bonus = torch.sum(r * k * _param(common_params, "r_k", r), dim=-1, keepdim=True)
    return (x + (bonus * v).reshape(readout.shape)) * g


def _wkv_step(s, w_t, k_t, v_t, a_t, b_t, r_t):
    """One token of the recurrence for all heads: ``s (..., H, S, S)``, the rest ``(..., H, S)``,
    ``w_t`` the decay. ``s' = s * w_t[None] + v_t k_t^T + (s a_t) b_t^T`` (kept in ``s``'s dtype)
    and the readout ``s' r_t`` in ``r_t``'s dtype."""
    removed = s @ a_t[..., :, None]
    s = (s * w_t[..., None, :] + v_t[..., :, None] @ k_t[..., None, :] + removed @ b_t[..., None, :]).to(s.dtype)
    return s, (s @ r_t[..., :, None]).squeeze(-1).to(r_t.dtype)


def _decay(w):
    """The decay ``exp(-exp(w))`` of the log-log decay ``w``."""
    return torch.exp(-torch.exp(w))


def _into(out, state):
    """``state`` written into ``out`` (in ``out``'s dtype) when given, else ``state``."""
    return state if out is None else out.copy_(state)


def _reset_mask(new_starts, t):
    """``new_starts`` at token ``t``, shaped to broadcast against a state ``(..., H, S, S)``."""
    return new_starts[..., t, None, None, None]


class BaseRWKV(LLM):
    """RWKV-7 with Python loops over layers and tokens."""

    @classmethod
    def transform_torch_model(cls, torch_model, dtype=torch.bfloat16):
        """Official RWKV-7 state dict -> the layout :meth:`load_from_torch` nests, changed IN PLACE
        (and returned); ``dtype`` is unused.

        ``blocks.0.ln0`` moves to top-level ``ln0`` (other layers' ``ln0`` are dropped); layer 0's
        ``att.v0/v1/v2`` (absent in official checkpoints, as layer 0 has no value residual) are
        set to zeros shaped like layer 1's, so the model needs at least two layers; tensors whose
        key contains ``.x_``, ``.k_``, ``.a0``, ``.v0`` or ``.w0`` are squeezed from ``(1, 1, C)``
        to ``(C,)``.
        """
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
        """Zeros of shape ``(n_layer, 2 + head_size, n_embd)`` in the embedding's dtype (one member;
        stack or ``expand`` it to ``(N, ...)`` for a population)."""
        emb = params["emb"]["weight"]
        n_layer, _, head_size = params["blocks"]["att"]["r_k"].shape
        return torch.zeros((n_layer, 2 + head_size, emb.shape[1]), dtype=emb.dtype, device=emb.device)

    @classmethod
    def embed(cls, common_params, tokens):
        """Rows of ``emb.weight`` read without noise: ``(T, C)`` for the flattened ``tokens``, or
        ``(N, T, C)`` for a population (``tokens (N, ...)``, each member's ids flattened)."""
        table = common_params.params["emb"]["weight"]
        if _is_population(common_params.iterinfo):
            return table[tokens.reshape(tokens.shape[0], -1)]
        return table[tokens.reshape(-1)]

    @classmethod
    def outhead(cls, common_params, x):
        """``ln_out`` (noised) then the un-noised ``head``: ``(..., T, C) -> (..., T, V)``."""
        x = call_submodule(LayerNorm, "ln_out", common_params, x)
        return x @ common_params.params["head"]["weight"].T

    @classmethod
    def inner_loop(cls, r, w, k, v, a, b, s, length, new_starts, *, out=None):
        """The WKV recurrence token by token.

        ``r, w, k, v, a, b (..., T, H, S)`` with ``w`` the log-log decay, ``s (..., H, S, S)``.
        Before token ``t`` the state is zeroed where ``new_starts[..., t]``. Returns the state
        after token ``length - 1`` (``s`` itself when ``length <= 0``), in ``s``'s dtype, and the
        readouts ``(..., T, H, S)``. ``out`` (shaped like ``s``) receives that state, converted
        to its dtype, and is returned in its place. On CUDA with Triton installed the whole
        sequence runs as one kernel (:mod:`.wkv_triton`: the same roundings, its sums in another
        order), writing straight into an ``out`` of ``s``'s dtype (outside torch.compile), when its
        inputs qualify (:func:`.wkv_triton.supports`); the CPU always runs this loop.
        """
        if r.is_cuda and triton_usable(r.device):
            from .wkv_triton import supports, wkv7

            if supports(r, w, k, v, a, b, s, new_starts):
                # Outside torch.compile the kernel forms the decay itself (three launches fewer);
                # under it, inductor fuses the two exps and the kernel stays free of libdevice.
                # Under torch.compile the state is copied into ``out``: the kernel writing into a
                # view of the graph's buffer made the compiled forward fault (illegal address,
                # torch 2.11, H100).
                eager = not torch.compiler.is_compiling()
                decay = w if eager else _decay(w)
                if out is None or (out.dtype == s.dtype and eager):
                    return wkv7(r, decay, k, v, a, b, s, length, new_starts, out=out, log_decay=eager)
                kept, readout = wkv7(r, decay, k, v, a, b, s, length, new_starts, log_decay=eager)
                return _into(out, kept), readout
        w = _decay(w)
        outs = []
        kept = s
        zeros = torch.zeros_like(s)
        for t in range(r.shape[-3]):
            s = torch.where(_reset_mask(new_starts, t), zeros, s)
            s, out_t = _wkv_step(s, w[..., t, :, :], k[..., t, :, :], v[..., t, :, :], a[..., t, :, :],
                                 b[..., t, :, :], r[..., t, :, :])
            outs.append(out_t)
            if t < length:
                kept = s
        return _into(out, kept), torch.stack(outs, dim=-3)

    @classmethod
    def _block(cls, block, x, pending, v_first, state, layer_id, length, new_starts, n_head, head_size, out):
        """One residual layer (time mixing, then channel mixing) on its own params/keys ``block``
        and state ``(..., 2 + head_size, C)``. The residual stream is ``x + pending``: ``pending``
        is the previous layer's channel-mixing output (None for the first layer), added where the
        LayerNorm reads the sum (one kernel on CUDA). Returns ``x`` after the time mixing, this
        layer's channel-mixing output (the next ``pending``), ``v_first`` and the layer's new
        state, written into ``out`` (shaped like ``state``)."""
        if pending is None:
            att_in = call_submodule(LayerNorm, "ln1", block, x)
        else:
            x, att_in = call_submodule(LayerNorm, "ln1", block, x, residual=pending)
        x_new, s, v_first = call_submodule(TimeMixing, "att", block, att_in, state[..., 1:, :], v_first, length,
                                           new_starts, n_head, head_size, layer_id, cls.inner_loop,
                                           out=out[..., 1:, :])
        x, ffn_in = call_submodule(LayerNorm, "ln2", block, x, residual=x_new)
        x_new, shift = call_submodule(ChannelMixing, "ffn", block, ffn_in, state[..., :1, :], length, new_starts)
        out[..., 0, :].copy_(shift)
        return x, x_new, v_first, out

    @classmethod
    def forward_seq(cls, common_params, x, state, length, new_starts):
        """``ln0`` then every layer over ``x (..., T, C)`` with ``state (..., L, 2 + S, C)``; returns
        the features ``(..., T, C)`` (before ``ln_out``) and the new state.

        Layer ``i`` runs on row ``i`` of every stacked ``blocks`` param and key.
        """
        n_layer, n_head, head_size = common_params.params["blocks"]["att"]["r_k"].shape
        x = call_submodule(LayerNorm, "ln0", common_params, x)
        v_first = x
        # Every layer writes its rows of the new state in place: joining them afterwards would
        # copy the whole state (population x layers x (2 + S) x C) again, every token.
        new_state = torch.empty(state.shape, dtype=state.dtype, device=state.device)
        pending = None
        for i in range(n_layer):
            block = common_params._replace(
                params=tree.map(lambda leaf: leaf[i], common_params.params["blocks"]),
                es_tree_key=tree.map(lambda leaf: leaf[i], common_params.es_tree_key["blocks"]),
            )
            x, pending, v_first, _ = cls._block(block, x, pending, v_first, state[..., i, :, :], i, length,
                                                new_starts, n_head, head_size, new_state[..., i, :, :])
        return (x if pending is None else x + pending), new_state


def _is_population(iterinfo):
    """Whether ``iterinfo`` names a population (1-D epochs and thread ids) rather than one member."""
    return iterinfo is not None and torch.as_tensor(iterinfo[1]).ndim == 1


class ScanRWKV(BaseRWKV):
    """:class:`BaseRWKV` whose recurrence returns both results in ``r``'s dtype (the reference runs
    it as a ``lax.scan``; the arithmetic is the same sequence)."""

    @classmethod
    def inner_loop(cls, r, w, k, v, a, b, s, length, new_starts, *, out=None):
        """As :meth:`BaseRWKV.inner_loop`; both results are cast to ``r``'s dtype (the state
        before it goes into ``out``)."""
        if out is not None and s.dtype == r.dtype:
            kept, readout = super().inner_loop(r, w, k, v, a, b, s, length, new_starts, out=out)
            return kept, readout.to(r.dtype)
        kept, readout = super().inner_loop(r, w, k, v, a, b, s, length, new_starts)
        return _into(out, kept.to(r.dtype)), readout.to(r.dtype)


class AssociativeScanRWKV(BaseRWKV):
    """:class:`BaseRWKV` with the recurrence as a composition of the affine maps ``s -> s @ (diag(w_t)
    + a_t b_t^T) + v_t k_t^T`` (the reference's ``lax.associative_scan``), applied in order."""

    @classmethod
    def inner_loop(cls, r, w, k, v, a, b, s, length, new_starts, *, out=None):
        """As :meth:`BaseRWKV.inner_loop` (results in ``r``'s dtype) except at resets: a flag
        ``new_starts[t]`` zeroes the map of token ``t - 1`` (or the initial state when ``t == 0``),
        so for ``t > 0`` the readout of token ``t - 1`` is zero, and so is the returned state when
        ``length == t``; the readouts from token ``t`` on match the sequential loops.
        ``length`` must lie in ``[0, T]`` (it indexes the ``T + 1`` prefix states)."""
        w = _decay(w)
        transitions = torch.diag_embed(w) + a[..., :, None] * b[..., None, :]
        inputs = v[..., :, None] * k[..., None, :]
        # Element 0 is the initial state with a zero map; element t + 1 is token t; a flag at
        # token t zeroes element t (the reference's reset, shifted by one).
        lead, n_tokens = r.shape[:-3], r.shape[-3]
        reset = torch.cat([new_starts.expand(*lead, n_tokens), torch.zeros_like(new_starts[..., :1]).expand(*lead, 1)],
                          dim=-1)
        state = torch.where(_reset_mask(reset, 0), torch.zeros_like(s), s).to(r.dtype)
        prefix_states = [state]
        outs = []
        for t in range(n_tokens):
            keep = ~_reset_mask(reset, t + 1)
            state = torch.where(keep, inputs[..., t, :, :, :], 0) + state @ torch.where(
                keep, transitions[..., t, :, :, :], 0)
            prefix_states.append(state)
            outs.append((state @ r[..., t, :, :, None]).squeeze(-1))
        return _into(out, prefix_states[length].to(r.dtype)), torch.stack(outs, dim=-3).to(r.dtype)


class FastRWKV(BaseRWKV):
    """:class:`BaseRWKV` itself: the reference's variant unrolls its layer loop in Python, which is
    how every model here runs."""
