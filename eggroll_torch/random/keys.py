"""Key construction and derivation: ``key``/``PRNGKey``, ``key_data``/``wrap_key_data``,
``fold_in`` and ``split``, all on batches of raw threefry keys.

A key is a ``torch.uint32`` tensor of shape ``(*batch, 2)``: the words ``jax.random.key_data``
returns. Every function here maps over any leading batch shape.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from . import config
from .counters import iota_2x32
from .threefry import from_words, threefry2x32, to_words

_INT64_RANGE = (-(2**63), 2**63)


def check_keys(keys, name: str = "keys") -> torch.Tensor:
    """Validate a key batch: a ``torch.uint32`` tensor whose last axis has length 2."""
    if not isinstance(keys, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.uint32 tensor of shape (*batch, 2); got {type(keys).__name__}. "
            "Convert JAX or numpy key data with eggroll_torch.random.wrap_key_data."
        )
    if keys.dtype != torch.uint32 or keys.ndim < 1 or keys.shape[-1] != 2:
        raise TypeError(
            f"{name} must be a torch.uint32 tensor of shape (*batch, 2); got dtype {keys.dtype} "
            f"and shape {tuple(keys.shape)}. Build keys with key(seed) or wrap_key_data(words)."
        )
    return keys


def key_words(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two int32 word tensors ``(k0, k1)`` of a key batch, each of shape ``batch``."""
    words = to_words(keys)
    return words[..., 0], words[..., 1]


def _seed_words(seed, x64: bool) -> tuple[int, int]:
    """The (high, low) words JAX's threefry seeding gives ``seed`` under the x64 setting."""
    if isinstance(seed, torch.Tensor):
        if seed.ndim != 0 or seed.dtype.is_floating_point or seed.dtype.is_complex or seed.dtype == torch.bool:
            raise TypeError(f"seed must be a scalar integer; got a {seed.dtype} tensor "
                            f"of shape {tuple(seed.shape)}")
        wide = seed.element_size() == 8
        value = int(seed.item())
    elif isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"seed must be an integer, not a bool ({seed!r})")
    elif isinstance(seed, np.integer):
        wide = seed.dtype.itemsize == 8
        value = int(seed)
    elif isinstance(seed, numbers.Integral):
        value = int(seed)
        if not _INT64_RANGE[0] <= value < _INT64_RANGE[1]:
            raise ValueError(f"seed must fit in int64, i.e. lie in [-2**63, 2**63); got {value}")
        wide = True
    else:
        raise TypeError(f"seed must be a Python int or an integer scalar; got {type(seed).__name__}")
    # 64-bit seeds keep their high word only with x64 on; with it off JAX first narrows them to
    # 32 bits, and narrower seeds have no high word at all (a logical shift by 32 gives 0).
    high = (value % 2**64) >> 32 if (wide and x64) else 0
    return high, value % 2**32


def _seed_key(seed, device, x64: bool | None) -> torch.Tensor:
    high, low = _seed_words(seed, config.enable_x64(x64))
    words = torch.tensor([high, low], dtype=torch.int64).to(torch.uint32)
    return words.to(device) if device is not None else words


def key(seed, *, device=None, x64: bool | None = None) -> torch.Tensor:
    """Key words of ``jax.random.key(seed)``: a ``torch.uint32`` tensor of shape ``(2,)``.

    ``x64`` is the ``jax_enable_x64`` setting to imitate (default: :func:`config.set_enable_x64`);
    it only matters for 64-bit seeds outside ``[0, 2**32)``.
    """
    return _seed_key(seed, device, x64)


def PRNGKey(seed, *, device=None, x64: bool | None = None) -> torch.Tensor:  # noqa: N802 (JAX's name)
    """Same words as ``jax.random.PRNGKey(seed)``, which equal ``key_data(jax.random.key(seed))``."""
    return _seed_key(seed, device, x64)


def key_data(keys: torch.Tensor) -> torch.Tensor:
    """The raw words of a key batch; keys already are raw words, so this validates and returns them."""
    return check_keys(keys)


def wrap_key_data(words, *, device=None) -> torch.Tensor:
    """Key batch from uint32 words of shape ``(*batch, 2)`` (numpy array, torch tensor or JAX array).

    Values are taken as given, never re-hashed. Signed or wider integer arrays are rejected so that
    an accidental ``int64`` copy cannot silently change a key.
    """
    if isinstance(words, torch.Tensor):
        tensor = words
    else:
        array = np.asarray(words)
        if array.dtype != np.uint32:
            raise TypeError(
                f"words must have dtype uint32 (as jax.random.key_data returns); got {array.dtype}. "
                "Cast explicitly with .astype(np.uint32) if the values are known to be key words."
            )
        tensor = torch.from_numpy(array.astype(np.uint32, copy=True))
    check_keys(tensor, "words")
    return tensor.to(device) if device is not None else tensor


def _data_words(data, device) -> torch.Tensor:
    """``fold_in`` data as int32 words: low 32 bits of integer tensors, range-checked Python ints."""
    if isinstance(data, (bool, np.bool_)):
        raise TypeError(f"data must be an integer, not a bool ({data!r})")
    if isinstance(data, numbers.Integral) and not isinstance(data, np.integer):
        if not 0 <= int(data) < 2**32:
            raise ValueError(f"data must lie in [0, 2**32) as a Python int (JAX casts it to uint32); got {data}")
        return torch.tensor(int(data) - 2**32 if data >= 2**31 else int(data), dtype=torch.int32, device=device)
    tensor = data if isinstance(data, torch.Tensor) else torch.as_tensor(np.asarray(data))
    if tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool:
        raise TypeError(f"data must be an integer or integer tensor; got dtype {tensor.dtype}")
    tensor = tensor.to(device)
    if tensor.dtype == torch.uint32:
        return to_words(tensor)
    return tensor.to(torch.int64).bitwise_and(0xFFFFFFFF).to(torch.int32)


def fold_in(keys: torch.Tensor, data) -> torch.Tensor:
    """``jax.random.fold_in`` mapped over keys and data, which broadcast against each other.

    keys: ``(*kbatch, 2)`` uint32; data: an int in ``[0, 2**32)`` or an integer tensor of shape
    ``dbatch`` (its low 32 bits are used). Returns ``(*broadcast(kbatch, dbatch), 2)`` uint32.
    """
    check_keys(keys)
    k0, k1 = key_words(keys)
    words = _data_words(data, keys.device)
    # fold_in hashes the two-word count [0, data] and keeps both outputs.
    y0, y1 = threefry2x32(k0, k1, torch.zeros_like(words), words)
    return from_words(torch.stack([y0, y1], dim=-1))


def _split_shape(num) -> tuple[int, ...]:
    shape = tuple(num) if isinstance(num, (tuple, list)) else (num,)
    if not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise ValueError(f"num must be a non-negative int or a tuple of them; got {num!r}")
    return tuple(int(n) for n in shape)


def split(keys: torch.Tensor, num=2, *, partitionable: bool | None = None) -> torch.Tensor:
    """``jax.random.split`` mapped over a key batch.

    keys: ``(*batch, 2)`` uint32; ``num``: an int or a shape tuple. Returns
    ``(*batch, *shape, 2)`` uint32. ``partitionable`` imitates ``jax_threefry_partitionable``
    (default: :func:`config.set_threefry_partitionable`).
    """
    check_keys(keys)
    shape = _split_shape(num)
    k0, k1 = key_words(keys)
    if config.threefry_partitionable(partitionable):
        lead = (...,) + (None,) * len(shape)
        hi, lo = iota_2x32(shape, keys.device)
        y0, y1 = threefry2x32(k0[lead], k1[lead], hi, lo)
        return from_words(torch.stack([y0, y1], dim=-1))
    flat = hash_iota(k0[..., None], k1[..., None], 2 * math.prod(shape))
    return from_words(flat.reshape(*keys.shape[:-1], *shape, 2))


def hash_iota(k0: torch.Tensor, k1: torch.Tensor, count: int) -> torch.Tensor:
    """JAX's ``threefry_2x32(key, arange(count))``: counts halved into two lanes, padded if odd.

    k0, k1: int32 words of shape ``(*batch, 1)``. Returns int32 words ``(*batch, count)``.
    """
    if count >= 2**32 - 1:
        raise ValueError(f"non-partitionable threefry streams are limited to 2**32 - 2 words; got {count}")
    half = (count + 1) // 2
    lanes = torch.arange(2 * half, dtype=torch.int64, device=k0.device)
    if count % 2:
        lanes[-1] = 0
    lanes = lanes.to(torch.int32)
    y0, y1 = threefry2x32(k0, k1, lanes[:half], lanes[half:])
    return torch.cat([y0, y1], dim=-1)[..., :count]
