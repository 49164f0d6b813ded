"""The harness's numpy parameter trees as a torch ``nn.Module``, and back.

Ports take an ``nn.Module``; the harness passes nested ``dict``s of numpy arrays. A tree becomes
a module whose submodules follow the dict nesting in insertion order (as a torch model registers
them), so the parameter named ``"0.weight"`` is the leaf at path ``"0/weight"``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ... import trees

_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
                 "bfloat16": torch.bfloat16}


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a harness dtype name (``"float32"``, ``"bfloat16"``, ...)."""
    if name not in _TORCH_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_TORCH_DTYPES)}, got {name!r}")
    return _TORCH_DTYPES[name]


def to_torch(array) -> torch.Tensor:
    """A CPU tensor with ``array``'s values and dtype; ``ml_dtypes.bfloat16`` arrays stay bfloat16."""
    arr = np.asarray(array)
    if arr.dtype.name == "bfloat16":
        return torch.from_numpy(arr.view(np.uint16).copy()).view(torch.bfloat16)
    return torch.from_numpy(arr.copy())


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """Host numpy copy; bfloat16 becomes float32 (exact), which the adapter protocol accepts.

    A copy, never a view: ``.cpu()`` of a CPU tensor is the tensor itself, and ports update their
    parameters in place, which would change an output the harness already holds.
    """
    t = tensor.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy().copy()


def torch_name(path: str) -> str:
    """``"0/weight"`` -> ``"0.weight"``: a tree path as ``named_parameters`` spells it."""
    return path.replace("/", ".")


def module_from_tree(params: dict) -> nn.Module:
    """An ``nn.Module`` holding every leaf of ``params`` as a parameter, nested like the tree."""
    module = nn.Module()
    for key, value in params.items():
        if isinstance(value, dict):
            module.add_module(key, module_from_tree(value))
        else:
            module.register_parameter(key, nn.Parameter(to_torch(value)))
    return module


def tree_from_module(module: nn.Module, template: dict) -> dict:
    """The module's current parameter values as a numpy tree shaped like ``template``."""
    named = dict(module.named_parameters())
    return trees.map_leaves_with_path(lambda path, _: to_numpy(named[torch_name(path)]), template)


def one_param_module(value: torch.Tensor, name: str = "w") -> nn.Module:
    """A module with the single parameter ``name`` (the adapters' single-leaf probes)."""
    module = nn.Module()
    module.register_parameter(name, nn.Parameter(value))
    return module
