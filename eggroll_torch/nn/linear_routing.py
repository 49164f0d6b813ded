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
                    raise ValueError(
                        f"parameter {name!r} is an MM_PARAM (low-rank noise), which only applies "
                        f"through F.linear / nn.Linear, but the model passes it to "
                        f"{getattr(func, '__qualname__', func)}; give it full-rank noise with "
                        f"es_classes={{{name!r}: PARAM}} (or EXCLUDED to leave it unperturbed)"
                    )
        return func(*args, **kwargs)


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
