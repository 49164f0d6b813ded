"""Route ``F.linear`` calls on chosen weight tensors through a member's own matmul.

``nn.Linear.forward`` is ``F.linear(x, weight, bias)``. Inside :class:`LinearRouting`, a call
whose ``weight`` *is* (by identity) one of the routed tensors runs ``route(x, weight)`` instead
of ``x @ weight.T`` and then adds the bias, in upstream's order: ``do_mm(x) + bias``. For EGGROLL
``route`` is ``x @ W.T + (x @ B) @ A.T``, so no perturbed weight matrix is ever formed.

A routed weight that reaches any other torch function (``w.T``, ``x @ w``,
``F.multi_head_attention_forward``, ...) would silently miss its noise there, so that raises a
``ValueError`` naming the parameter and the fix; reading its metadata (shape, dtype, device) is
allowed.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from .member_ops import lowrank_linear, member_layer_norm, member_value

Route = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

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
}


class LinearRouting(TorchFunctionMode):
    """Torch function mode sending ``F.linear(x, W, b)`` to ``routes[name](x, W) + b``.

    ``routes`` maps a parameter path to ``(weight tensor, route)``; weights are matched by
    identity, so pass the very tensors that ``functional_call`` installs in the module.
    """

    def __init__(self, routes: Mapping[str, tuple[torch.Tensor, Route]]):
        super().__init__()
        self._by_id = {id(weight): (name, route) for name, (weight, route) in routes.items()}

    def _routed(self, value) -> str | None:
        hit = self._by_id.get(id(value))
        return None if hit is None else hit[0]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            x, weight, bias = _linear_args(args, kwargs)
            hit = self._by_id.get(id(weight))
            if hit is not None:
                out = hit[1](x, weight)
                return out if bias is None else out + bias
        elif func not in _METADATA:
            for value in _top_level_values(args, kwargs):
                name = self._routed(value)
                if name is not None:
                    raise matrix_misuse(name, func)
        return func(*args, **kwargs)


def matrix_misuse(name: str, func) -> ValueError:
    """The error for an ``MM_PARAM`` that reaches a function other than ``F.linear``."""
    return ValueError(
        f"parameter {name!r} is an MM_PARAM (low-rank noise), which only applies "
        f"through F.linear / nn.Linear, but the model passes it to "
        f"{getattr(func, '__qualname__', func)}; give it full-rank noise with "
        f"es_classes={{{name!r}: PARAM}} (or EXCLUDED to leave it unperturbed)"
    )


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


class PopulationRouting(TorchFunctionMode):
    """Torch function mode of one member of a pair-engine population (inside its vmap).

    ``matrices``: ``{path: MatrixNoise}`` (see :mod:`.engine`); ``vectors``:
    ``{path: (parameter, sigma-scaled noise (P, *shape))}``; ``member``: the member index
    (batched by the population's vmap). ``F.linear`` on a matrix and ``F.layer_norm`` with a
    noisy weight or bias run the population custom ops of :mod:`.member_ops`; any other function
    given a noisy parameter receives the member's value ``param + s_m * noise[m // 2]``, so every
    use of a parameter sees its noise. A matrix reaching any other function raises, as in
    :class:`LinearRouting`.
    """

    def __init__(self, matrices, vectors, member: torch.Tensor):
        super().__init__()
        self._matrices = {id(noise.weight): (name, noise) for name, noise in matrices.items()}
        self._vectors = {id(param): (name, noise) for name, (param, noise) in vectors.items()}
        self._member = member

    def _noise(self, value):
        hit = self._vectors.get(id(value)) if value is not None else None
        return None if hit is None else hit[1]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            x, weight, bias = _linear_args(args, kwargs)
            hit = self._matrices.get(id(weight))
            if hit is not None:
                noise = hit[1]
                # The bias folded into the factor rows is used only when it is the one passed.
                folded = noise.bias_columns if bias is noise.bias else 0
                return lowrank_linear(x, weight, bias, self._noise(bias), noise.B, noise.rows, self._member, folded)
        elif func is F.layer_norm:
            x, shape, weight, bias, eps = _layer_norm_args(args, kwargs)
            weight_noise, bias_noise = self._noise(weight), self._noise(bias)
            if weight_noise is not None or bias_noise is not None:
                return member_layer_norm(x, list(shape), weight, weight_noise, bias, bias_noise, self._member, eps)
        if func in _METADATA:
            return func(*args, **kwargs)
        for value in _top_level_values(args, kwargs):
            hit = self._matrices.get(id(value))
            if hit is not None:
                raise matrix_misuse(hit[0], func)

        def member_of(value):
            noise = self._noise(value) if isinstance(value, torch.Tensor) else None
            return value if noise is None else member_value(value, noise, self._member)

        args = tuple([member_of(v) for v in a] if isinstance(a, list) else
                     tuple(member_of(v) for v in a) if isinstance(a, tuple) else member_of(a) for a in args)
        kwargs = {k: member_of(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)


def _layer_norm_args(args, kwargs):
    names = ("input", "normalized_shape", "weight", "bias", "eps")
    defaults = {"weight": None, "bias": None, "eps": 1e-5}
    values = dict(zip(names, args))
    for name in names[len(args):]:
        values[name] = kwargs.get(name, defaults.get(name))
    shape = values["normalized_shape"]
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return values["input"], shape, values["weight"], values["bias"], float(values["eps"])
