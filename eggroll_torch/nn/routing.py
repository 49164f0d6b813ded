"""Torch function modes that apply each member's noise where a module uses a parameter.

A module runs under one of these modes (inside the population's ``vmap`` over members, or once
per member) with its parameters installed by ``functional_call``. Parameters are matched by
identity, so the modes see exactly the tensors the module reads:

- an ``MM_PARAM`` matrix ``W`` multiplies without ever forming ``W + noise``:
  ``F.linear(x, W, b)`` (``nn.Linear``) becomes ``x @ W.T + (x @ B) @ A.T + b``, upstream's
  ``do_mm``; ``torch.addmm(b, x, W)``, ``torch.matmul(x, W)`` and ``torch.mm(x, W)``
  (``transformers``' GPT-2 ``Conv1D``, hand-written layers) become ``x @ W + (x @ A) @ B.T``,
  upstream's ``do_Tmm``; ``F.multi_head_attention_forward`` and the recurrent kernels
  (``torch.gru``, ``torch.lstm``, ``torch.rnn_*`` and their cells) run as
  :mod:`.routed_functions`, whose every matrix product is such a ``linear``;
- ``F.scaled_dot_product_attention`` on the CPU runs as its math (softmax of scores), because the
  CPU kernels have no ``vmap`` rule and would run once per member;
- a matrix reaching any other torch function (``w.T``, ``x @ w.T``, ``F.embedding``) would
  silently miss its noise, so that raises a ``ValueError`` naming the parameter and the
  ``es_classes`` override (reading its shape, dtype or device is allowed);
- a full-rank noisy ``PARAM`` (pair engine only) reaches every other function as the member's
  value ``param + s_m * noise``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from .member_ops import lowrank_linear, member_layer_norm, member_matmul, member_value
from .routed_functions import CELLS, RECURRENT, cell, math_attention, multi_head_attention, recurrent

_METADATA = {
    torch.Tensor.shape.__get__,
    torch.Tensor.dtype.__get__,
    torch.Tensor.device.__get__,
    torch.Tensor.ndim.__get__,
    torch.Tensor.requires_grad.__get__,
    torch.Tensor.is_cuda.__get__,
    torch.Tensor.layout.__get__,
    torch.Tensor.size,
    torch.Tensor.dim,
    torch.Tensor.numel,
    torch.Tensor.is_floating_point,
    torch.Tensor.is_complex,
    torch.Tensor.__len__,
    torch.Tensor.get_device,
    torch.Tensor.is_contiguous,
    torch.Tensor.stride,
    torch.Tensor.storage_offset,
    torch.Tensor.element_size,
}
_MATMULS = {torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.mm, torch.Tensor.mm}
_ADDMMS = {torch.addmm, torch.Tensor.addmm}


@dataclass(frozen=True)
class MatrixRoute:
    """One member's products with a matrix ``W``: ``mm(x, W) = x @ (W + noise).T`` (``do_mm``)
    and ``tmm(x, W) = x @ (W + noise)`` (``do_Tmm``)."""

    mm: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    tmm: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def matrix_misuse(name: str, func) -> ValueError:
    """The error for an ``MM_PARAM`` that reaches a function no route covers."""
    return ValueError(
        f"parameter {name!r} is an MM_PARAM (low-rank noise), which applies through F.linear "
        f"(nn.Linear), x @ W / torch.addmm (Conv1D), nn.MultiheadAttention and nn.RNN/GRU/LSTM, but "
        f"the model passes it to {getattr(func, '__qualname__', func)}; give it full-rank noise with "
        f"es_classes={{{name!r}: PARAM}} (or EXCLUDED to leave it unperturbed)"
    )


class _Routing(TorchFunctionMode):
    """The dispatch both modes share; subclasses say what a matrix and a member value are."""

    def _matrix_name(self, value) -> str | None:
        raise NotImplementedError

    def _routed_linear(self, x, weight, bias):
        raise NotImplementedError

    def _routed_matmul(self, x, weight):
        raise NotImplementedError

    def _member(self, value):
        return value

    def linear(self, x, weight, bias):
        """``x @ W.T + b`` with the member's weight and bias (used by :mod:`.routed_functions`)."""
        if self._matrix_name(weight) is not None:
            return self._routed_linear(x, weight, bias)
        return F.linear(x, self.value(weight), self.value(bias))

    def value(self, tensor):
        """The member's value of a tensor that is not multiplied as a matrix."""
        if tensor is None:
            return None
        name = self._matrix_name(tensor)
        if name is not None:
            raise matrix_misuse(name, "a non-matrix use inside a routed layer")
        return self._member(tensor)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            x, weight, bias = _linear_args(args, kwargs)
            if self._matrix_name(weight) is not None:
                return self._routed_linear(x, weight, bias)
        elif func in _MATMULS and len(args) == 2 and not kwargs:
            x, weight = args
            if self._matrix_name(weight) is not None and self._matrix_name(x) is None:
                return self._routed_matmul(x, weight)
        elif func in _ADDMMS and len(args) == 3 and not kwargs:
            bias, x, weight = args
            if self._matrix_name(weight) is not None and self._matrix_name(x) is None:
                return self._routed_matmul(x, weight) + self.value(bias)
        elif func is F.scaled_dot_product_attention and _on_cpu(args, kwargs):
            return math_attention(*(self.value(a) for a in args), **{k: self.value(v) for k, v in kwargs.items()})
        elif func is F.multi_head_attention_forward:
            return multi_head_attention(self, args, kwargs)
        elif func in RECURRENT:
            return recurrent(self, func, args, kwargs)
        elif func in CELLS:
            return cell(self, func, args, kwargs)
        elif func is torch.Tensor.data_ptr:
            return _storage_address(args[0])
        elif func is torch._cudnn_rnn_flatten_weight:
            # nn.RNNBase packs its weights for cuDNN before each forward on CUDA; the routed
            # recurrence never reads that buffer, and packing would copy the shared weights.
            return None
        if func in _METADATA:
            return func(*args, **kwargs)
        for value in _top_level_values(args, kwargs):
            name = self._matrix_name(value)
            if name is not None:
                raise matrix_misuse(name, func)
        return self._call(func, args, kwargs)

    def _call(self, func, args, kwargs):
        return func(*args, **kwargs)


class LinearRouting(_Routing):
    """The mode of one member whose matrices multiply through ``routes``.

    ``routes`` maps a parameter path to ``(weight tensor, MatrixRoute)``; every other parameter
    already holds the member's value (installed by ``functional_call``).
    """

    def __init__(self, routes: Mapping[str, tuple[torch.Tensor, MatrixRoute]]):
        super().__init__()
        self._by_id = {id(weight): (name, route) for name, (weight, route) in routes.items()}

    def _matrix_name(self, value):
        hit = self._by_id.get(id(value))
        return None if hit is None else hit[0]

    def _routed_linear(self, x, weight, bias):
        out = self._by_id[id(weight)][1].mm(x, weight)
        return out if bias is None else out + bias

    def _routed_matmul(self, x, weight):
        return self._by_id[id(weight)][1].tmm(x, weight)


class PopulationRouting(_Routing):
    """The mode of one member of a pair-engine population (inside its vmap).

    ``matrices``: ``{path: MatrixNoise | DeferredMatrixNoise}`` (see :mod:`.engine`; a deferred
    one is drawn at each product and dropped after it); ``vectors``:
    ``{path: (parameter, sigma-scaled noise (P, *shape))}``; ``member``: the member index
    (batched by the population's vmap). Matrix products and ``F.layer_norm`` with a noisy
    weight or bias run the population custom ops of :mod:`.member_ops`.
    """

    def __init__(self, matrices, vectors, member: torch.Tensor):
        super().__init__()
        self._matrices = {id(noise.weight): (name, noise) for name, noise in matrices.items()}
        self._vectors = {id(param): (name, noise) for name, (param, noise) in vectors.items()}
        self._member_index = member

    def _matrix_name(self, value):
        hit = self._matrices.get(id(value))
        return None if hit is None else hit[0]

    def _noise(self, value):
        hit = self._vectors.get(id(value)) if value is not None else None
        return None if hit is None else hit[1]

    def _member(self, value):
        noise = self._noise(value) if isinstance(value, torch.Tensor) else None
        return value if noise is None else member_value(value, noise, self._member_index)

    def _routed_linear(self, x, weight, bias):
        noise = self._matrices[id(weight)][1].materialize()
        member = self._member_index
        if bias is not None and bias is not noise.bias and self._noise(bias) is None:
            # Not a noisy parameter (a shared one, or a value the module computed): added after.
            return lowrank_linear(x, weight, None, None, noise.B, noise.rows, member, 0) + bias
        # The bias folded into the factor rows is used only when it is the one passed.
        folded = noise.bias_columns if bias is noise.bias else 0
        return lowrank_linear(x, weight, bias, self._noise(bias), noise.B, noise.rows, member, folded)

    def _routed_matmul(self, x, weight):
        noise = self._matrices[id(weight)][1].materialize()
        return member_matmul(x, weight, noise.B, noise.rows, self._member_index)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.layer_norm:
            kwargs = kwargs or {}
            x, shape, weight, bias, eps = _layer_norm_args(args, kwargs)
            weight_noise, bias_noise = self._noise(weight), self._noise(bias)
            if weight_noise is not None or bias_noise is not None:
                return member_layer_norm(x, list(shape), weight, weight_noise, bias, bias_noise,
                                         self._member_index, eps)
        return super().__torch_function__(func, types, args, kwargs)

    def _call(self, func, args, kwargs):
        member_of = self._member
        args = tuple([member_of(v) for v in a] if isinstance(a, list) else
                     tuple(member_of(v) for v in a) if isinstance(a, tuple) else member_of(a) for a in args)
        kwargs = {k: member_of(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)


def _storage_address(tensor: torch.Tensor) -> int:
    """``data_ptr()`` of a tensor or, for a member's view inside vmap (which has no storage of its
    own), of the population tensor it views: nn.RNNBase compares its weights' addresses."""
    while torch._C._functorch.is_batchedtensor(tensor):
        tensor = torch._C._functorch.get_unwrapped(tensor)
    return tensor.data_ptr()


def _on_cpu(args, kwargs) -> bool:
    query = args[0] if args else kwargs.get("query")
    return isinstance(query, torch.Tensor) and query.device.type == "cpu"


def _linear_args(args, kwargs):
    x = args[0] if args else kwargs["input"]
    weight = args[1] if len(args) > 1 else kwargs["weight"]
    bias = args[2] if len(args) > 2 else kwargs.get("bias")
    return x, weight, bias


def _top_level_values(args, kwargs):
    for value in (*args, *kwargs.values()):
        if isinstance(value, (list, tuple)):
            yield from value
        else:
            yield value


def _layer_norm_args(args, kwargs):
    names = ("input", "normalized_shape", "weight", "bias", "eps")
    defaults = {"weight": None, "bias": None, "eps": 1e-5}
    values = dict(zip(names, args))
    for name in names[len(args):]:
        values[name] = kwargs.get(name, defaults.get(name))
    shape = values["normalized_shape"]
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return values["input"], shape, values["weight"], values["bias"], float(values["eps"])
