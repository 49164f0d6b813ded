"""Every member's noise for a group of same-shaped parameters, drawn in bulk.

EGGROLL's threads ``2p`` and ``2p + 1`` are an antithetic pair: both use the key
``fold_in(fold_in(k, true_epoch), p)`` and differ only in sign. So a population of N members
needs ``P = ceil(N / 2)`` draws per parameter, one per pair, and this module draws them for all
pairs and all parameters of a group at once. The values are those of
:func:`eggroll_torch.random.normal` for the same member keys, bit for bit, whichever way they
are computed: a fused Triton kernel on CUDA (:mod:`.threefry_kernel`), a compiled C loop on the
CPU (:mod:`.threefry_cpu`), or else the ``eggroll_torch.random`` functions, a few thousand keys
at a time so the work stays in cache. Odd populations need no special case: the last pair's
second member is simply not used.
"""
from __future__ import annotations

import torch

from eggroll_torch import random as es_random
from eggroll_torch.random import config as random_config
from eggroll_torch.random.normal_tables import normal_table
from . import threefry_cpu
from eggroll_torch.random.triton_support import triton_usable

_KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# Elements hashed per eggroll_torch.random call on the fallback path: small enough that the
# threefry temporaries stay in a CPU's L2 cache.
_CHUNK_ELEMENTS = 1 << 16


def true_epoch(epoch, noise_reuse: int):
    """The epoch folded into the key: 0 when ``noise_reuse == 0``, else ``epoch // noise_reuse``."""
    return 0 if noise_reuse == 0 else epoch // noise_reuse


def pair_keys(layer_keys: torch.Tensor, epoch, num_pairs: int, noise_reuse: int, first: int = 0) -> torch.Tensor:
    """Member keys ``(L, P, 2)``: ``fold_in(fold_in(layer_keys[l], true_epoch), p)`` for pairs
    ``p = first .. first + num_pairs - 1``.

    ``epoch``: a Python int or an integer tensor of one element.
    """
    if torch.is_tensor(epoch):
        epoch = epoch.reshape(())
    epoch_keys = es_random.fold_in(layer_keys, true_epoch(epoch, noise_reuse))
    pairs = torch.arange(first, first + num_pairs, dtype=torch.int64, device=layer_keys.device)
    return es_random.fold_in(epoch_keys[:, None, :], pairs)


def _check(layer_keys, out, noise_reuse):
    if not isinstance(layer_keys, torch.Tensor) or layer_keys.dtype != torch.uint32 or layer_keys.ndim != 2 \
            or layer_keys.shape[1] != 2:
        raise TypeError("layer_keys must be a torch.uint32 tensor of shape (L, 2); stack the layers' keys")
    if out.ndim != 4 or out.shape[0] != layer_keys.shape[0]:
        raise ValueError(
            f"out must have shape (L={layer_keys.shape[0]}, P, rows, cols); got {tuple(out.shape)}"
        )
    if out.device != layer_keys.device:
        raise ValueError(f"out is on {out.device} but layer_keys on {layer_keys.device}; put both on one device")
    if isinstance(noise_reuse, bool) or not isinstance(noise_reuse, int) or noise_reuse < 0:
        raise ValueError(f"noise_reuse must be an int >= 0, got {noise_reuse!r}")


def _check_kernel(kernel, out: torch.Tensor) -> None:
    if kernel not in ("triton", "c", None):
        raise ValueError(f"kernel must be 'auto', 'triton', 'c' or None; got {kernel!r}")
    if kernel is None:
        return
    if out.dtype not in _KERNEL_DTYPES:
        raise ValueError(f"kernel={kernel!r} draws float32, bfloat16 or float16, not {out.dtype}; use kernel=None")
    if kernel == "c" and (out.device.type != "cpu" or threefry_cpu.library() is None):
        raise ValueError("kernel='c' needs a CPU tensor and a C compiler (cc or $CC); use kernel='auto'")
    if kernel == "triton" and not triton_usable(out.device):
        raise ValueError(f"kernel='triton' cannot run on {out.device} here (needs CUDA and triton); use kernel='auto'")


def _epoch_tensor(epoch, device) -> torch.Tensor:
    if torch.is_tensor(epoch):
        if epoch.numel() != 1 or epoch.dtype.is_floating_point:
            raise TypeError(
                f"epoch must be an int or a one-element integer tensor; got {epoch.dtype} {tuple(epoch.shape)}"
            )
        return epoch.reshape(1).to(device=device, dtype=torch.int32)
    return torch.full((1,), int(epoch), dtype=torch.int32, device=device)


def use_kernel(device, dtype: torch.dtype) -> str | None:
    """Which kernel :func:`draw_pair_normals` runs for this device and dtype: ``"triton"``,
    ``"c"`` or None (torch ops)."""
    if dtype not in _KERNEL_DTYPES or not random_config.threefry_partitionable():
        return None
    if triton_usable(device):
        return "triton"
    if torch.device(device).type == "cpu" and threefry_cpu.library() is not None:
        return "c"
    return None


def _c_table(out: torch.Tensor, variant: str) -> torch.Tensor | None:
    # The C kernel computes XLA:CPU's float32 values; other variants and dtypes use tables.
    computed = out.dtype == torch.float32 and variant == "cpu"
    return None if computed else normal_table(out.dtype, out.device, variant)


def draw_pair_normals(layer_keys: torch.Tensor, epoch, out: torch.Tensor, *, noise_reuse: int,
                      variant: str = "cpu", kernel: str | None = "auto", scaled: tuple | None = None) -> torch.Tensor:
    """Fill ``out`` ``(L, P, rows, cols)`` with ``normal(pair_keys[l, p], (rows, cols), out.dtype)``.

    ``out`` may have any strides (e.g. a ``(L, P, cols, rows)`` tensor transposed in its last
    two axes). ``variant`` is passed to
    ``eggroll_torch.random.normal``'s table. ``kernel``: ``"auto"`` (what :func:`use_kernel`
    picks), ``"triton"``, ``"c"`` or None for torch ops. ``scaled``: ``(tensor, split, scale)``
    splits each draw of ``split + tensor.shape[2]`` rows: rows below ``split`` go to ``out``
    ``(L, P, split, cols)``, the rest times ``scale`` (a float exact in ``out``'s dtype; the
    product rounded once) to ``tensor`` ``(L, P, rows - split, cols)``. The Triton kernel stores
    both as it draws; the other paths draw whole rows first. Returns ``out``.
    """
    _check(layer_keys, out, noise_reuse)
    if kernel == "auto":
        kernel = use_kernel(out.device, out.dtype)
    _check_kernel(kernel, out)
    if scaled is not None and kernel == "c":
        # Both parts drawn in place (the kernel starts a part at its row), then A scaled in place:
        # no draw-sized buffer and no copy, the product rounded once as below.
        target, split, scale = scaled
        table, epoch_ = _c_table(out, variant), int(true_epoch(int(epoch), noise_reuse))
        threefry_cpu.draw(layer_keys, epoch_, table, out)
        threefry_cpu.draw(layer_keys, epoch_, table, target, row0=split)
        target.mul_(torch.full((), scale, dtype=out.dtype, device=out.device))
        return out
    if scaled is not None and kernel != "triton":
        target, split, scale = scaled
        whole = out.new_empty(out.shape[0], out.shape[1], split + target.shape[2], out.shape[3])
        draw_pair_normals(layer_keys, epoch, whole, noise_reuse=noise_reuse, variant=variant, kernel=kernel)
        out.copy_(whole[:, :, :split])
        torch.mul(whole[:, :, split:], torch.full((), scale, dtype=out.dtype, device=out.device), out=target)
        return out
    if kernel is not None:
        if kernel == "c":
            threefry_cpu.draw(layer_keys, int(true_epoch(int(epoch), noise_reuse)), _c_table(out, variant), out)
            return out
        from .threefry_kernel import launch_normals

        launch_normals(layer_keys.contiguous(), _epoch_tensor(epoch, out.device), out,
                       noise_reuse=noise_reuse, variant=variant, scaled=scaled)
        return out
    layers, pairs, rows, cols = out.shape
    keys = pair_keys(layer_keys, epoch, pairs, noise_reuse)
    step = max(1, _CHUNK_ELEMENTS // max(1, rows * cols))
    for layer in range(layers):
        for start in range(0, pairs, step):
            out[layer, start:start + step] = es_random.normal(
                keys[layer, start:start + step], (rows, cols), out.dtype, variant=variant
            )
    return out

