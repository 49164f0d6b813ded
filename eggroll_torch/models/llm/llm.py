"""The base of the language models: loading a PyTorch state dict into a stacked params tree.

An LLM's ``params`` is a nested dict built from the flat, dotted keys of a PyTorch ``state_dict``:
every per-layer tensor (a key with a numeric component, ``blocks.<i>.<path>``) is stacked along a
new leading axis under ``blocks.<path>``, so a model loops over its layers by indexing that axis;
``scan_map`` marks those leaves ``(0,)`` and ``es_map`` says how the noiser treats each leaf.

Population convention (as :mod:`eggroll_torch.models.common`): with a population ``iterinfo`` every
activation and the recurrent state carry a leading member axis ``N``; without one they do not.
"""
from __future__ import annotations

import torch

from ... import tree
from ..base_model import CommonInit, Model
from ..common import as_dtype

__all__ = ["get_int_component", "LLM"]


def get_int_component(x):
    """The numeric components of a dotted key as a tuple of ints, in order:
    ``"blocks.3.att.key.weight" -> (3,)``, ``"emb.weight" -> ()``.

    Used as a sort key, so that keys without a layer number come first and layers stack in
    numeric order (``2`` before ``10``)."""
    return tuple(int(part) for part in x.split(".") if part.isdigit())


def _nest(flat):
    """Nested dict from ``{dotted_key: tensor}``.

    Numeric components are dropped from the path, and the tensors of all keys sharing the same
    remaining path are gathered in a list in the order the keys come in ``flat``; keys without a
    numeric component are stored as they are."""
    nested = {"blocks": {}}
    for name, value in flat.items():
        *path, leaf = name.split(".")
        node = nested
        stacked = False
        for part in path:
            if part.isdigit():
                stacked = True
                continue
            node = node.setdefault(part, {})
        if stacked:
            node.setdefault(leaf, []).append(value)
        else:
            node[leaf] = value
    return nested


class LLM(Model):
    """A language model over one stream of tokens (per member); subclasses define the hooks below."""

    @classmethod
    def transform_torch_model(cls, torch_model, dtype=torch.bfloat16):
        """Hook to rename/reshape a PyTorch state dict before loading; here it is returned as is."""
        return torch_model

    @classmethod
    def transform_config(cls, config):
        """Hook to turn a checkpoint's config into the model's ``frozen_params``; identity here."""
        return config

    @classmethod
    def get_scan_map(cls, config):
        """The ``scan_map`` of the loaded params tree (subclasses)."""
        raise NotImplementedError("Scan map is not implemented")

    @classmethod
    def get_es_map(cls, config):
        """The ``es_map`` of the loaded params tree (subclasses). The message says "Scan map", as
        upstream's does, so that both hooks raise the same error."""
        raise NotImplementedError("Scan map is not implemented")

    @classmethod
    def load_from_torch(cls, torch_model, config, dtype=torch.bfloat16):
        """A :class:`CommonInit` from a PyTorch (CPU) state dict ``{dotted_key: torch.Tensor}``.

        The dict goes through :meth:`transform_torch_model` (which may change it in place); every
        tensor is widened with ``tensor.float()`` and cast to ``dtype`` (a torch dtype or its
        name), so a bfloat16 result is rounded once, from float32, as the reference rounds it.
        Keys are taken in :func:`get_int_component` order (a stable sort, so within one layer the
        dict's own order stands) and nested by :func:`_nest`; each list of per-layer tensors is
        stacked into one of shape ``(n_layer, *shape)``. ``frozen_params`` is
        ``transform_config(config)``; the maps come from :meth:`get_scan_map` and
        :meth:`get_es_map` of that transformed config.
        """
        dtype = as_dtype(dtype)
        weights = cls.transform_torch_model(torch_model, dtype=dtype)
        frozen = cls.transform_config(config)
        converted = {name: tensor.float().to(dtype) for name, tensor in weights.items()}
        ordered = {name: converted[name] for name in sorted(converted, key=get_int_component)}
        params = tree.map(lambda x: torch.stack(x) if isinstance(x, list) else x, _nest(ordered),
                          is_leaf=lambda x: isinstance(x, list))
        return CommonInit(frozen, params, cls.get_scan_map(frozen), cls.get_es_map(frozen))

    @classmethod
    def randomize_weights(cls, key, n_layer, n_embd, vocab_size, config, dtype):
        """Freshly initialised weights (subclasses; none of upstream's models defines it)."""
        raise NotImplementedError("Randomize Weights is not implemented")

    @classmethod
    def default_state(cls, params, config):
        """The recurrent state at the start of a stream (subclasses)."""
        raise NotImplementedError("Default State is not implemented")

    @classmethod
    def embed(cls, common_params, tokens):
        """Token ids -> ``(T, n_embd)`` inputs, ``(N, T, n_embd)`` for a population (subclasses)."""
        raise NotImplementedError("Embedding function is not implemented")

    @classmethod
    def outhead(cls, common_params, x):
        """``(..., T, n_embd)`` features -> ``(..., T, vocab)`` logits (subclasses)."""
        raise NotImplementedError("Out head is not implemented")

    @classmethod
    def forward_seq(cls, common_params, x, state, length, new_starts):
        """``(..., T, n_embd)`` inputs and a state -> features of the same shape and the new state
        (subclasses)."""
        raise NotImplementedError("Forward sequence is not implemented")

    @classmethod
    def _forward(cls, common_params, tokens, state, length=None, new_starts=None):
        """Logits and the new state for one stream of ``T`` tokens per member.

        ``tokens``: ``T`` ids in any shape (flattened), or ``(N, ...)`` for a population (each
        member's ids flattened). Logits are ``(T, vocab)`` or ``(N, T, vocab)``. ``length``
        (default ``T``; an int or a 0-d tensor, shared by all members): how many leading tokens
        are real; the returned state is the one after token ``length - 1``, while logits are
        computed for all ``T`` positions. ``new_starts`` (default all False): a ``(T,)`` bool mask,
        or ``(N, T)`` per member; where True, the recurrence is reset to zero just before that
        token, so a new document starts there.
        """
        tokens = torch.as_tensor(tokens)
        x = cls.embed(common_params, tokens)
        n_tokens = x.shape[-2]
        if length is None:
            length = n_tokens
        if new_starts is None:
            new_starts = torch.zeros((n_tokens,), dtype=torch.bool, device=x.device)
        x, state = cls.forward_seq(common_params, x, state, length, torch.as_tensor(new_starts, device=x.device))
        return cls.outhead(common_params, x), state
