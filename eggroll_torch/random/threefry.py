"""The Threefry-2x32 block cipher (20 rounds), the hash under every JAX random function.

torch has no uint32 add or shift on CPU, so words travel as ``torch.int32`` tensors holding the
same 32 bits (two's complement): addition wraps identically, and the logical right shift inside a
rotation is an arithmetic shift followed by a mask.

In torch ops the hash is about a hundred small kernels; under the ``"auto"`` and ``"kernel"``
backends (:func:`.config.set_backend`) it runs as one C call on the CPU (:mod:`.native`) or one
Triton launch on CUDA (:mod:`.triton_normal`) wherever those can run, with the same words. Key
derivations (``fold_in``, ``split``) are such small hashes, made once per parameter per call.
"""
from __future__ import annotations

import torch

from . import config, native
from .triton_support import triton_usable

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = 0x1BD11BDA


def to_words(t: torch.Tensor) -> torch.Tensor:
    """Reinterpret a ``torch.uint32`` tensor as the ``torch.int32`` words used internally."""
    return t.view(torch.int32)


def from_words(t: torch.Tensor) -> torch.Tensor:
    """Reinterpret internal ``torch.int32`` words as ``torch.uint32``."""
    return t.contiguous().view(torch.uint32)


def _rotl_xor_(x1: torch.Tensor, x0: torch.Tensor, r: int) -> torch.Tensor:
    """In place: ``x1 = rotl(x1, r) ^ x0`` on 32-bit words stored in int32."""
    high = torch.bitwise_left_shift(x1, r)
    x1.bitwise_right_shift_(32 - r).bitwise_and_((1 << r) - 1)
    return x1.bitwise_or_(high).bitwise_xor_(x0)


def _broadcast_shape(*shapes) -> tuple[int, ...]:
    # torch.broadcast_shapes goes through torch._refs, whose first use imports sympy (seconds).
    ndim = max(len(shape) for shape in shapes)
    out = []
    for axis in range(-ndim, 0):
        sizes = {shape[axis] for shape in shapes if len(shape) >= -axis} - {1}
        if len(sizes) > 1:
            raise RuntimeError(f"shapes {[tuple(s) for s in shapes]} do not broadcast")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def threefry2x32(k0: torch.Tensor, k1: torch.Tensor, x0: torch.Tensor, x1: torch.Tensor):
    """Hash the counter pair ``(x0, x1)`` under the key ``(k0, k1)``.

    All four are int32 word tensors that broadcast together; the result is a pair of new int32
    tensors of the broadcast shape (the inputs are not modified). Equals XLA's
    ``threefry2x32`` primitive word for word.
    """
    shape = _broadcast_shape(k0.shape, k1.shape, x0.shape, x1.shape)
    hashed = _kernel_hash((k0, k1, x0, x1), shape)
    if hashed is not None:
        return hashed
    k2 = k0 ^ k1 ^ _PARITY
    schedule = (k0, k1, k2)
    y0 = (x0 + k0).expand(shape).contiguous()
    y1 = (x1 + k1).expand(shape).contiguous()
    for block in range(5):
        for r in _ROTATIONS[block % 2]:
            y0.add_(y1)
            _rotl_xor_(y1, y0, r)
        y0.add_(schedule[(block + 1) % 3])
        y1.add_(schedule[(block + 2) % 3] + (block + 1))
    return y0, y1


def _kernel_hash(words, shape):
    """The hash by the C or Triton kernel, or None where the backend or device rules it out
    (inside ``torch.compile``'s tracing the torch ops are what gets compiled)."""
    device = words[0].device
    if config.backend() not in ("auto", "kernel") or torch.compiler.is_compiling():
        return None
    on_cuda = device.type == "cuda" and triton_usable(device)
    if not (on_cuda or (device.type == "cpu" and native.available())):
        return None
    flat = tuple(w.expand(shape).contiguous() for w in words)
    if flat[0].numel() == 0:
        return flat[0].clone(), flat[0].clone()
    if on_cuda:
        from .triton_normal import threefry_words

        return threefry_words(flat)
    return native.threefry_words(flat)
