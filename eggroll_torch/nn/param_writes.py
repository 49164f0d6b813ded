"""Writing a step's new parameters into the module's own tensors.

One multi-tensor copy for all leaves (``torch._foreach_copy_``) instead of a copy per leaf. The
new parameters of a flat solver step (a small tree of one dtype, :mod:`eggroll_torch.optim._flat`)
are views of one tensor, so the graphed generation's "only if every score was finite" selection
is then one ``where`` over the concatenated parameters instead of one per leaf. Values are the
same bit for bit either way.
"""
from __future__ import annotations

import torch

from eggroll_torch.optim._flat import concatenated_pair


def write(targets: list[torch.Tensor], new: list[torch.Tensor]) -> None:
    """``targets[i].copy_(new[i])`` for every ``i`` (same shapes; no autograd)."""
    torch._foreach_copy_(targets, new)


def write_if(finite: torch.Tensor, targets: list[torch.Tensor], new: list[torch.Tensor]) -> None:
    """``targets[i]`` becomes ``new[i]`` where the 0-d bool ``finite`` is true and stays as it is
    otherwise, without a host synchronisation (a CUDA graph records it)."""
    pair = concatenated_pair(targets, new)
    if pair is not None:
        ordered, old, whole = pair
        write(ordered, torch._utils._unflatten_dense_tensors(torch.where(finite, whole, old), ordered))
        return
    write(targets, [torch.where(finite, n, t) for t, n in zip(targets, new)])
