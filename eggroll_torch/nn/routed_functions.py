"""Torch functions that use weight matrices internally, rewritten over a routed ``linear``.

``F.multi_head_attention_forward`` and the recurrent kernels (``torch.gru``, ``torch.lstm``,
``torch.rnn_tanh``, ``torch.rnn_relu`` and their ``*_cell`` forms) multiply by their weight
matrices inside C++ (or, for attention, dispatch back to the active torch function mode), so a
routing mode cannot apply a member's low-rank noise there. The functions here compute the same
results from the mode's own operations, so every matrix goes through ``ops.linear``:

- ``ops.linear(x, weight, bias)``: ``x @ W_m.T + b_m`` with member ``m``'s weight and bias;
- ``ops.value(t)``: member ``m``'s value of any other tensor (the tensor itself when unperturbed).

They run once per member (inside the population's ``vmap``), on that member's unbatched
tensors. Summation order differs from torch's fused kernels (the ``reduction`` tolerance of
:mod:`conformance.tolerances`); the math is torch's, as documented for ``nn.GRU``, ``nn.LSTM``,
``nn.RNN`` and ``nn.MultiheadAttention``.
"""
from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F


class MemberOps(Protocol):
    def linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor: ...

    def value(self, tensor: torch.Tensor | None) -> torch.Tensor | None: ...


_ATTENTION_ARGS = (
    "query", "key", "value", "embed_dim_to_check", "num_heads", "in_proj_weight", "in_proj_bias",
    "bias_k", "bias_v", "add_zero_attn", "dropout_p", "out_proj_weight", "out_proj_bias", "training",
    "key_padding_mask", "need_weights", "attn_mask", "use_separate_proj_weight", "q_proj_weight",
    "k_proj_weight", "v_proj_weight", "static_k", "static_v", "average_attn_weights", "is_causal",
)
_ATTENTION_DEFAULTS = {
    "training": True, "key_padding_mask": None, "need_weights": True, "attn_mask": None,
    "use_separate_proj_weight": False, "q_proj_weight": None, "k_proj_weight": None, "v_proj_weight": None,
    "static_k": None, "static_v": None, "average_attn_weights": True, "is_causal": False,
}


def multi_head_attention(ops: MemberOps, args: tuple, kwargs: dict):
    """``F.multi_head_attention_forward(*args, **kwargs)`` with its projections through ``ops``.

    Returns ``(attn_output, attn_weights or None)`` as torch does. ``static_k`` / ``static_v``
    are refused (no module of torch passes them).
    """
    a = dict(zip(_ATTENTION_ARGS, args))
    for name in _ATTENTION_ARGS[len(args):]:
        a[name] = kwargs.get(name, _ATTENTION_DEFAULTS.get(name))
    if a["static_k"] is not None or a["static_v"] is not None:
        raise ValueError("static_k / static_v are not supported in an EGGROLL population; pass key and value")
    query, key, value = a["query"], a["key"], a["value"]
    batched = query.dim() == 3
    if not batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
    embed, heads = a["embed_dim_to_check"], a["num_heads"]
    if query.shape[-1] != embed or embed % heads:
        raise ValueError(
            f"multi-head attention got query features {query.shape[-1]}, embed_dim {embed} and "
            f"num_heads {heads}; embed_dim must equal the query's last axis and divide by num_heads"
        )
    q, k, v = _in_projections(ops, query, key, value, a)
    target, batch = q.shape[0], q.shape[1]
    bias_k, bias_v = ops.value(a["bias_k"]), ops.value(a["bias_v"])
    key_padding_mask = a["key_padding_mask"]
    if key_padding_mask is not None and not batched:
        key_padding_mask = key_padding_mask.unsqueeze(0)
    attn_mask = _float_mask(a["attn_mask"], q.dtype)
    key_padding_mask = _float_mask(key_padding_mask, q.dtype)
    if bias_k is not None and bias_v is not None:
        k = torch.cat([k, bias_k.expand(1, batch, embed)])
        v = torch.cat([v, bias_v.expand(1, batch, embed)])
        attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
        key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))
    head_dim = embed // heads
    # (L, B, E) -> (B, H, L, head_dim)
    q, k, v = (t.reshape(t.shape[0], batch, heads, head_dim).permute(1, 2, 0, 3) for t in (q, k, v))
    if a["add_zero_attn"]:
        k = torch.cat([k, k.new_zeros(batch, heads, 1, head_dim)], dim=2)
        v = torch.cat([v, v.new_zeros(batch, heads, 1, head_dim)], dim=2)
        attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
        key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))
    mask = _merged_mask(attn_mask, key_padding_mask, batch, heads, target, k.shape[2])
    dropout = a["dropout_p"] if a["training"] else 0.0
    if a["need_weights"]:
        scores = (q * (1.0 / math.sqrt(head_dim))) @ k.transpose(-2, -1)
        if mask is not None:
            scores = scores + mask
        weights = torch.softmax(scores, dim=-1)
        out = (F.dropout(weights, dropout) if dropout > 0 else weights) @ v
    else:
        weights = None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
    out = out.permute(2, 0, 1, 3).reshape(target, batch, embed)
    out = ops.linear(out, a["out_proj_weight"], a["out_proj_bias"])
    if weights is not None and a["average_attn_weights"]:
        weights = weights.mean(dim=1)
    if not batched:
        out = out.squeeze(1)
        weights = None if weights is None else weights.squeeze(0)
    return out, weights


def _in_projections(ops, query, key, value, a):
    embed = a["embed_dim_to_check"]
    bias = a["in_proj_bias"]
    if a["use_separate_proj_weight"]:
        biases = (None, None, None) if bias is None else ops.value(bias).chunk(3)
        return tuple(ops.linear(x, a[f"{name}_proj_weight"], None) + (0 if b is None else b)
                     for x, name, b in zip((query, key, value), "qkv", biases))
    weight = a["in_proj_weight"]
    if query is key and key is value:
        return ops.linear(query, weight, bias).chunk(3, dim=-1)
    # The packed matrix is one low-rank parameter, so each input takes its slice of the whole
    # projection (the noise cannot be sliced without materializing it).
    return tuple(ops.linear(x, weight, bias)[..., i * embed:(i + 1) * embed]
                 for i, x in enumerate((query, key, value)))


def _float_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """An additive mask: boolean ``True`` (not allowed) becomes ``-inf``, as torch's MHA reads it."""
    if mask is None or mask.is_floating_point():
        return None if mask is None else mask.to(dtype)
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))


def _merged_mask(attn_mask, key_padding_mask, batch, heads, target, source):
    """``(B, H, L, S)`` sum of the attention mask ``(L, S)`` / ``(B*H, L, S)`` and the key
    padding mask ``(B, S)``, or None."""
    mask = None
    if attn_mask is not None:
        mask = attn_mask.reshape(batch, heads, target, source) if attn_mask.dim() == 3 else attn_mask
    if key_padding_mask is not None:
        padding = key_padding_mask.reshape(batch, 1, 1, source)
        mask = padding if mask is None else mask + padding
    return None if mask is None else mask.expand(batch, heads, target, source)


def math_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                   enable_gqa=False):
    """``F.scaled_dot_product_attention`` written as ``softmax(q @ k.T * scale + mask) @ v``.

    The CPU kernels of ``scaled_dot_product_attention`` have no ``vmap`` batching rule, so
    ``vmap`` would run them once per member; these ops batch. Shapes as torch's:
    ``(..., L, E)``, ``(..., S, E)``, ``(..., S, Ev)`` -> ``(..., L, Ev)``.
    """
    if enable_gqa and key.shape[-3] != query.shape[-3]:
        groups = query.shape[-3] // key.shape[-3]
        key, value = key.repeat_interleave(groups, dim=-3), value.repeat_interleave(groups, dim=-3)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query * scale) @ key.transpose(-2, -1)
    if is_causal:
        allowed = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool, device=query.device).tril()
        scores = scores.masked_fill(~allowed, float("-inf"))
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool \
            else scores + attn_mask
    weights = torch.softmax(scores, dim=-1)
    if dropout_p > 0:
        weights = F.dropout(weights, dropout_p)
    return weights @ value


RECURRENT = {torch.rnn_tanh: "rnn_tanh", torch.rnn_relu: "rnn_relu", torch.lstm: "lstm", torch.gru: "gru"}
CELLS = {torch.rnn_tanh_cell: "rnn_tanh", torch.rnn_relu_cell: "rnn_relu", torch.lstm_cell: "lstm",
         torch.gru_cell: "gru"}


def recurrent(ops: MemberOps, func, args: tuple, kwargs: dict):
    """``torch.gru`` / ``torch.lstm`` / ``torch.rnn_*`` on padded input, every matrix through
    ``ops.linear``. Returns ``(output, h_n)`` (``(output, h_n, c_n)`` for LSTM) as torch does."""
    if kwargs or len(args) != 9:
        raise TypeError(f"{func.__name__} called with an unexpected signature")
    if isinstance(args[3], (list, tuple)):
        raise ValueError(
            f"{func.__name__} on a PackedSequence cannot run in an EGGROLL population (torch's packed "
            "kernel takes one set of weights); pad the batch (torch.nn.utils.rnn.pad_packed_sequence) "
            "and pass the padded tensor"
        )
    x, hx, params, has_biases, layers, dropout, train, bidirectional, batch_first = args
    kind = RECURRENT[func]
    directions = 2 if bidirectional else 1
    per_direction = len(params) // (layers * directions)
    projected = per_direction == (5 if has_biases else 3)
    h0, c0 = (hx[0], hx[1]) if kind == "lstm" else (hx, None)
    if batch_first:
        x = x.transpose(0, 1)
    last_h, last_c = [], []
    for layer in range(layers):
        outputs = []
        for direction in range(directions):
            index = layer * directions + direction
            weights = list(params[index * per_direction:(index + 1) * per_direction])
            w_ih, w_hh = weights[0], weights[1]
            b_ih, b_hh = (weights[2], weights[3]) if has_biases else (None, None)
            w_hr = weights[-1] if projected else None
            h, c = h0[index], None if c0 is None else c0[index]
            # The input's projection for every step at once; only the hidden one is sequential.
            gates_in = ops.linear(x, w_ih, b_ih)
            steps = range(x.shape[0] - 1, -1, -1) if direction else range(x.shape[0])
            hidden = [None] * x.shape[0]
            for t in steps:
                h, c = _step(ops, kind, gates_in[t], h, c, w_hh, b_hh, w_hr)
                hidden[t] = h
            outputs.append(torch.stack(hidden))
            last_h.append(h)
            if c is not None:
                last_c.append(c)
        x = outputs[0] if directions == 1 else torch.cat(outputs, dim=-1)
        if dropout and train and layer < layers - 1:
            x = F.dropout(x, dropout, training=True)
    if batch_first:
        x = x.transpose(0, 1)
    if kind == "lstm":
        return x, torch.stack(last_h), torch.stack(last_c)
    return x, torch.stack(last_h)


def cell(ops: MemberOps, func, args: tuple, kwargs: dict):
    """``torch.gru_cell`` / ``torch.lstm_cell`` / ``torch.rnn_*_cell`` through ``ops.linear``."""
    names = ("input", "hx", "w_ih", "w_hh", "b_ih", "b_hh")
    a = dict(zip(names, args))
    for name in names[len(args):]:
        a[name] = kwargs.get(name)
    kind = CELLS[func]
    gates_in = ops.linear(a["input"], a["w_ih"], a["b_ih"])
    h, c = (a["hx"][0], a["hx"][1]) if kind == "lstm" else (a["hx"], None)
    h, c = _step(ops, kind, gates_in, h, c, a["w_hh"], a["b_hh"], None)
    return (h, c) if kind == "lstm" else h


def _step(ops, kind, gates_in, h, c, w_hh, b_hh, w_hr):
    """One time step from the input's gate pre-activations ``gates_in``; returns ``(h, c)``."""
    gates_hidden = ops.linear(h, w_hh, b_hh)
    if kind == "gru":
        in_r, in_z, in_n = gates_in.chunk(3, dim=-1)
        hid_r, hid_z, hid_n = gates_hidden.chunk(3, dim=-1)
        reset = torch.sigmoid(in_r + hid_r)
        update = torch.sigmoid(in_z + hid_z)
        new = torch.tanh(in_n + reset * hid_n)
        return new + update * (h - new), None
    if kind == "lstm":
        in_gate, forget, cell_gate, out_gate = (gates_in + gates_hidden).chunk(4, dim=-1)
        c = torch.sigmoid(forget) * c + torch.sigmoid(in_gate) * torch.tanh(cell_gate)
        h = torch.sigmoid(out_gate) * torch.tanh(c)
        return (h if w_hr is None else ops.linear(h, w_hr, None)), c
    pre = gates_in + gates_hidden
    return (torch.tanh(pre) if kind == "rnn_tanh" else torch.relu(pre)), None
