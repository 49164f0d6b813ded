"""Model building blocks: parameter kinds, per-leaf ES keys, and the layers (MM, Linear, MLP...).

``rand_init`` draws with ``eggroll_torch.random`` exactly what upstream draws with
``jax.random``, so a model built from the same key starts from the same weights bit for bit.
``dtype`` may be a torch dtype or its name (``"float32"``, as upstream passes it).
"""
from __future__ import annotations

import torch

from .. import random, tree
from ..numerics import default_float_dtype, divide_by_broadcast, mean, sqrt, var, weak_scalar
from ..random.triton_support import triton_usable
from .base_model import CommonInit, CommonParams, Model

__all__ = [
    "ACTIVATIONS", "EMB_PARAM", "EXCLUDED", "MM_PARAM", "PARAM", "MLP", "MM", "TMM", "CommonInit",
    "CommonParams", "Embedding", "Linear", "Model", "Parameter", "as_dtype", "call_submodule",
    "layer_norm", "merge_frozen", "merge_inits", "recursive_scan_split", "simple_es_tree_key", "submodule",
]

# es classes: how a leaf is perturbed and updated.
PARAM = 0  # full-rank noise (biases, norms)
MM_PARAM = 1  # weight matrix: low-rank noise under EGGROLL
EMB_PARAM = 2  # embedding table: no noise, zero update
EXCLUDED = 3  # never perturbed, zero update


def as_dtype(dtype) -> torch.dtype:
    """A torch floating dtype from a torch dtype or its name (``"float32"``, ``"bfloat16"``...)."""
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    elif isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
        resolved = getattr(torch, dtype)
    else:
        raise TypeError(f"dtype must be a torch floating dtype or its name such as 'float32'; got {dtype!r}")
    if not resolved.is_floating_point:
        raise TypeError(f"dtype must be a floating dtype; got {resolved}")
    return resolved


def layer_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps)`` over the last axis (no scale or shift).

    On CUDA with Triton (outside torch.compile) a float32 or bfloat16 ``x`` and a number ``eps``
    go through one kernel with the same roundings (:mod:`.standardize_triton`; its sums in
    another order) instead of about twenty.
    """
    fused = _fused_standardize(x, eps)
    return _standardize_ops(x, eps) if fused is None else fused


def _standardize_ops(x: torch.Tensor, eps) -> torch.Tensor:
    """:func:`layer_norm` as the reference's sequence of ops."""
    spread = sqrt(var(x, -1, keepdim=True) + weak_scalar(eps, x))
    return divide_by_broadcast(x - mean(x, -1, keepdim=True), spread)


def _own_kernels(x: torch.Tensor) -> bool:
    """Whether the models' Triton kernels take ``x``'s op: on CUDA with Triton, unless
    torch.compile is tracing (inductor fuses the plain ops itself; a kernel of ours is opaque to
    it)."""
    return x.is_cuda and triton_usable(x.device) and not torch.compiler.is_compiling()


def _standardize_kernels(x: torch.Tensor, eps):
    """:mod:`.standardize_triton` when its kernels may take ``x`` (CUDA, Triton, not under
    torch.compile, whose inductor fuses the plain ops itself) with a number ``eps``, else None."""
    if not (isinstance(eps, (int, float)) and _own_kernels(x)):
        return None
    from . import standardize_triton

    return standardize_triton


def _fused_standardize(x: torch.Tensor, eps, weight: torch.Tensor | None = None,
                       bias: torch.Tensor | None = None) -> torch.Tensor | None:
    """:func:`.standardize_triton.standardize` of ``x`` (and ``* weight + bias`` when given) when
    it takes them (see :func:`_standardize_kernels`), else ``None``."""
    kernels = _standardize_kernels(x, eps)
    if kernels is None or not kernels.supports(x, weight, bias):
        return None
    return kernels.standardize(x, eps, weight, bias)


def _fused_add_standardize(x: torch.Tensor, residual: torch.Tensor, eps, weight: torch.Tensor | None = None,
                           bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """:func:`.standardize_triton.add_standardize`, ``(x + residual, its standardisation)``, when
    it takes the inputs (see :func:`_standardize_kernels`), else ``None``."""
    kernels = _standardize_kernels(x, eps)
    if kernels is None or not kernels.supports_residual(x, residual, weight, bias):
        return None
    return kernels.add_standardize(x, residual, eps, weight, bias)


def _silu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


ACTIVATIONS = {
    "relu": torch.relu,
    "silu": _silu,
    "pqn": lambda x: torch.relu(layer_norm(x)),
}


def recursive_scan_split(param, base_key, scan_tuple):
    """``base_key`` split once per index along each axis in ``scan_tuple``: ``(*sizes, 2)``.

    ``()`` returns ``base_key`` itself. Axis sizes are read from ``param``'s full shape.
    """
    keys = base_key
    for axis in scan_tuple:
        keys = random.split(keys, param.shape[axis])
    return keys


def simple_es_tree_key(params, base_key, scan_map):
    """One key per leaf: ``split(base_key, n_leaves)`` in flatten order (dict keys sorted), each
    split again along its leaf's ``scan_map`` axes. Returns a tree shaped like ``params``."""
    leaves, treedef = tree.flatten(params)
    random.key_data(base_key)
    if base_key.ndim != 1:
        raise ValueError(f"base_key must be a single key of shape (2,); got shape {tuple(base_key.shape)}")
    keys = random.split(base_key, len(leaves))
    key_tree = tree.unflatten(treedef, [keys[i] for i in range(len(leaves))])
    return tree.map(recursive_scan_split, params, key_tree, scan_map)


def merge_inits(**kwargs) -> CommonInit:
    """Combine named sub-inits into one ``CommonInit`` with a dict per field."""
    params, frozen_params, scan_map, es_map = {}, {}, {}, {}
    for name, init in kwargs.items():
        params[name] = init.params
        scan_map[name] = init.scan_map
        es_map[name] = init.es_map
        if init.frozen_params is not None:
            frozen_params[name] = init.frozen_params
    return CommonInit(frozen_params or None, params, scan_map, es_map)


def merge_frozen(common: CommonInit, **kwargs) -> CommonInit:
    """``common`` with ``kwargs`` added to its frozen params."""
    return common._replace(frozen_params=(common.frozen_params or {}) | kwargs)


def call_submodule(cls, name, common_params: CommonParams, *args, **kwargs):
    """Run ``cls`` on the ``name`` entry of the params, frozen params and keys."""
    return cls._forward(submodule(common_params, name), *args, **kwargs)


def submodule(common_params: CommonParams, name) -> CommonParams:
    """The ``name`` entry of the params, frozen params and keys, as :func:`call_submodule` passes
    them to the submodule."""
    frozen = common_params.frozen_params
    return common_params._replace(
        frozen_params=frozen[name] if frozen and name in frozen else None,
        params=common_params.params[name],
        es_tree_key=common_params.es_tree_key[name],
    )


def _normal_init(key, shape, scale, dtype):
    """``(normal(key, shape) * scale).astype(dtype)``, drawn at JAX's default float precision."""
    draws = random.normal(key, shape, dtype=default_float_dtype(dtype))
    return (draws * weak_scalar(scale, draws)).to(dtype)


def _inverse_sqrt(n: int, dtype: torch.dtype, device) -> torch.Tensor:
    """``1 / sqrt(n)`` at JAX's default float precision (the fan-in scale)."""
    compute = default_float_dtype(dtype)
    return torch.tensor(1.0, dtype=compute, device=device) / sqrt(torch.tensor(n, dtype=compute, device=device))


class Parameter(Model):
    """A free tensor (``PARAM``): ``raw_value`` cast to ``dtype``, or ``normal(key, shape) * scale``."""

    @classmethod
    def rand_init(cls, key, shape, scale, raw_value, dtype, *args, **kwargs):
        dtype = as_dtype(dtype)
        if raw_value is not None:
            params = torch.as_tensor(raw_value, device=key.device).to(dtype)
        else:
            params = _normal_init(key, shape, scale, dtype)
        return CommonInit(None, params, (), PARAM)

    @classmethod
    def _forward(cls, common_params, *args, **kwargs):
        """The noisy parameter: ``(*shape)`` or ``(N, *shape)`` for a population."""
        return common_params.noiser.get_noisy_standard(common_params.frozen_noiser_params,
                                                       common_params.noiser_params, common_params.params,
                                                       common_params.es_tree_key, common_params.iterinfo)


class MM(Model):
    """``x @ W.T`` with ``W (out, in)`` (``MM_PARAM``), initialised ``normal / sqrt(in)``."""

    @classmethod
    def rand_init(cls, key, in_dim, out_dim, dtype, *args, **kwargs):
        dtype = as_dtype(dtype)
        scale = _inverse_sqrt(in_dim, dtype, key.device)
        return CommonInit(None, _normal_init(key, (out_dim, in_dim), scale, dtype), (), MM_PARAM)

    @classmethod
    def _forward(cls, common_params, x, *args, **kwargs):
        return common_params.noiser.do_mm(common_params.frozen_noiser_params, common_params.noiser_params,
                                          common_params.params, common_params.es_tree_key,
                                          common_params.iterinfo, x)


def _draw_in_dtype(key, shape, in_dim, dtype):
    """``normal(key, shape, dtype) * (1 / sqrt(in_dim))``: drawn directly in ``dtype``."""
    draws = random.normal(key, shape, dtype=dtype)
    return draws * weak_scalar(_inverse_sqrt(in_dim, dtype, key.device), draws)


class TMM(Model):
    """``x @ W`` with ``W (in, out)`` (``MM_PARAM``), drawn directly in ``dtype``."""

    @classmethod
    def rand_init(cls, key, in_dim, out_dim, dtype, *args, **kwargs):
        dtype = as_dtype(dtype)
        return CommonInit(None, _draw_in_dtype(key, (in_dim, out_dim), in_dim, dtype), (), MM_PARAM)

    @classmethod
    def _forward(cls, common_params, x, *args, **kwargs):
        return common_params.noiser.do_Tmm(common_params.frozen_noiser_params, common_params.noiser_params,
                                           common_params.params, common_params.es_tree_key,
                                           common_params.iterinfo, x)


class Embedding(Model):
    """Table ``(in, out)`` looked up by index (``EMB_PARAM``); EGGROLL-type noisers raise on it."""

    @classmethod
    def rand_init(cls, key, in_dim, out_dim, dtype, *args, **kwargs):
        dtype = as_dtype(dtype)
        return CommonInit(None, _draw_in_dtype(key, (in_dim, out_dim), in_dim, dtype), (), EMB_PARAM)

    @classmethod
    def _forward(cls, common_params, x, *args, **kwargs):
        return common_params.noiser.do_emb(common_params.frozen_noiser_params, common_params.noiser_params,
                                           common_params.params, common_params.es_tree_key,
                                           common_params.iterinfo, x)


def _align_members(value: torch.Tensor, param: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Give a per-member parameter ``(N, *shape)`` the axes of ``like (N, ..., *shape)``."""
    if value.ndim == param.ndim or like.ndim <= value.ndim:
        return value
    missing = like.ndim - value.ndim
    return value.reshape(value.shape[:1] + (1,) * missing + value.shape[1:])


class Linear(Model):
    """``x @ W.T (+ b)``: ``weight`` an ``MM``, ``bias`` a zero-initialised ``Parameter``."""

    @classmethod
    def rand_init(cls, key, in_dim, out_dim, use_bias, dtype, *args, **kwargs):
        dtype = as_dtype(dtype)
        weight = MM.rand_init(key, in_dim, out_dim, dtype)
        if not use_bias:
            return merge_inits(weight=weight)
        bias = Parameter.rand_init(key, None, None, torch.zeros(out_dim, dtype=dtype, device=key.device), dtype)
        return merge_inits(weight=weight, bias=bias)

    @classmethod
    def _forward(cls, common_params, x, *args, **kwargs):
        out = call_submodule(MM, "weight", common_params, x)
        if "bias" in common_params.params:
            bias = call_submodule(Parameter, "bias", common_params)
            out = out + _align_members(bias, common_params.params["bias"], out)
        return out


class MLP(Model):
    """``Linear`` layers ``in -> hidden_dims... -> out`` with ``activation`` between them."""

    @classmethod
    def rand_init(cls, key, in_dim, out_dim, hidden_dims, use_bias, activation, dtype, *args, **kwargs):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
        input_dims = [in_dim, *hidden_dims]
        output_dims = [*hidden_dims, out_dim]
        keys = random.split(key, len(input_dims))
        layers = {
            str(t): Linear.rand_init(keys[t], input_dims[t], output_dims[t], use_bias, dtype)
            for t in range(len(input_dims))
        }
        return merge_frozen(merge_inits(**layers), activation=activation)

    @classmethod
    def _forward(cls, common_params, x, *args, **kwargs):
        activation = ACTIVATIONS[common_params.frozen_params["activation"]]
        num_layers = len(common_params.params)
        for t in range(num_layers):
            x = call_submodule(Linear, str(t), common_params, x)
            if t != num_layers - 1:
                x = activation(x)
        return x
