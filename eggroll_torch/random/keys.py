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

    Args:
        seed (int | numpy.integer | torch.Tensor): a Python int in ``[-2**63, 2**63)``, a numpy
            integer scalar or a 0-d integer tensor. Its width matters as it does to JAX: only a
            64-bit seed (a Python int, ``int64``/``uint64``) can keep a high word.
        device (torch.device | str | None): where the key is created. Default ``None``: CPU.
        x64 (bool | None): the ``jax_enable_x64`` setting to imitate; ``None`` (default) uses
            :func:`set_enable_x64`'s. It only matters for 64-bit seeds outside ``[0, 2**32)``:
            with it off, JAX narrows them to 32 bits first.

    Returns:
        torch.Tensor: ``torch.uint32`` of shape ``(2,)``, ``[high word, low word]`` of the seed,
        equal to ``jax.random.key_data(jax.random.key(seed))``.

    Raises:
        TypeError: ``seed`` is a bool, a float, a non-scalar or non-integer tensor, or any other
            type; ``x64`` is not a bool or ``None``.
        ValueError: a Python int ``seed`` outside the int64 range.
    """
    return _seed_key(seed, device, x64)


def PRNGKey(seed, *, device=None, x64: bool | None = None) -> torch.Tensor:  # noqa: N802 (JAX's name)
    """Same words as ``jax.random.PRNGKey(seed)``, which equal ``key_data(jax.random.key(seed))``.

    Args:
        seed (int | numpy.integer | torch.Tensor): as in :func:`key`.
        device (torch.device | str | None): where the key is created. Default ``None``: CPU.
        x64 (bool | None): the ``jax_enable_x64`` setting to imitate, as in :func:`key`.

    Returns:
        torch.Tensor: ``torch.uint32`` of shape ``(2,)``, the same words :func:`key` returns.

    Raises:
        TypeError: as in :func:`key`.
        ValueError: as in :func:`key`.
    """
    return _seed_key(seed, device, x64)


def key_data(keys: torch.Tensor) -> torch.Tensor:
    """The raw words of a key batch; keys already are raw words, so this validates and returns them.

    Args:
        keys (torch.Tensor): a key batch, ``torch.uint32`` of shape ``(*batch, 2)``.

    Returns:
        torch.Tensor: ``keys`` itself (the same tensor, not a copy).

    Raises:
        TypeError: ``keys`` is not a ``torch.uint32`` tensor whose last axis has length 2.
    """
    return check_keys(keys)


def wrap_key_data(words, *, device=None) -> torch.Tensor:
    """Key batch from uint32 words of shape ``(*batch, 2)`` (numpy array, torch tensor or JAX array).

    Values are taken as given, never re-hashed. Signed or wider integer arrays are rejected so that
    an accidental ``int64`` copy cannot silently change a key.

    Args:
        words (numpy.ndarray | torch.Tensor | jax.Array): the key words, dtype uint32, shape
            ``(*batch, 2)`` (what ``jax.random.key_data`` returns). Anything else that
            ``numpy.asarray`` turns into a uint32 array is accepted too.
        device (torch.device | str | None): where to put the keys. Default ``None``: a torch
            tensor stays where it is, other inputs land on the CPU.

    Returns:
        torch.Tensor: ``torch.uint32`` of shape ``(*batch, 2)``. A torch tensor already on
        ``device`` is returned as is; any other input is copied.

    Raises:
        TypeError: the words are not uint32, or their last axis does not have length 2.
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

    Args:
        keys (torch.Tensor): ``torch.uint32`` keys of shape ``(*kbatch, 2)``.
        data (int | torch.Tensor | numpy.ndarray): a Python int in ``[0, 2**32)`` or an integer
            tensor/array of shape ``dbatch``, of which the low 32 bits are used (a ``uint32``
            tensor as is).

    Returns:
        torch.Tensor: ``torch.uint32`` keys of shape ``(*broadcast(kbatch, dbatch), 2)`` on
        ``keys``' device; key ``i`` folded with datum ``i``.

    Raises:
        TypeError: ``keys`` is not a key batch; ``data`` is a bool, or not integer.
        ValueError: a Python int ``data`` outside ``[0, 2**32)``.
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

    Args:
        keys (torch.Tensor): ``torch.uint32`` keys of shape ``(*batch, 2)``.
        num (int | tuple[int, ...]): how many keys to derive from each key, as a count or a
            shape of non-negative ints. Default 2.
        partitionable (bool | None): the ``jax_threefry_partitionable`` setting to imitate,
            which changes the derived keys; ``None`` (default) uses
            :func:`set_threefry_partitionable`'s (itself ``True`` by default, as jax >= 0.5).

    Returns:
        torch.Tensor: ``torch.uint32`` keys of shape ``(*batch, *shape, 2)`` on ``keys``'
        device, where ``shape`` is ``(num,)`` or ``num``.

    Raises:
        TypeError: ``keys`` is not a key batch; ``partitionable`` is not a bool or ``None``.
        ValueError: ``num`` is not a non-negative int or a tuple of them; or, non-partitionable,
            a split needs ``2**32 - 1`` or more words per key.
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
