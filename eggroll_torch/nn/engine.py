"""The pair engine of :class:`EggrollTrainer`: EGGROLL's noise drawn once per antithetic pair, in
bulk, and its update as one matmul per matrix.

Members ``2p`` and ``2p + 1`` share the key ``fold_in(fold_in(key, true_epoch), p)`` and differ
only in sign, so a population of N members needs ``P = N / 2`` draws per parameter. The engine
draws them for every parameter of a shape at once (one call of the fused threefry + normal
kernels of :mod:`eggroll_torch.fast.noise` per group, C on the CPU and Triton on CUDA) and keeps
them for the epoch, so the forward and the update read the same draws instead of drawing twice:

- ``MM_PARAM`` ``(out, in)``: ``z = normal(key_p, (in + out, r))``, ``B_p = z[:in]``,
  ``A_p = z[in:]`` (upstream's split); member ``n`` uses ``s_n * c * A_p @ B_p.T`` with
  ``c = sigma / sqrt(r)`` rounded to the parameter's dtype, ``s_n = +1`` for even ``n``.
- ``PARAM``: ``z`` ``(P, *shape)``; member ``n`` uses ``param + s_n * round(sigma * z_p)``.

The draws are the functional layer's bit for bit (same keys, same sampler); ``A`` is kept as
``round(c * z_A)``, exactly the ``A`` of ``get_lora_update_params`` but for the member's exact
sign, which the forward applies to ``x @ B``. The update collapses each pair: upstream's
``sum_n f_n A_n @ B_n.T / N`` equals ``sum_p w_p A_p @ B_p.T`` with ``w_p = (f_2p - f_2p+1) / N``,
one matmul of inner size ``P * r``, which changes only summation order and the rounding of
``w_p`` (within the ``reduction`` tolerance of :mod:`conformance.tolerances`).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from eggroll_torch import random as es_random
from eggroll_torch.fast.noise import draw_pair_normals, pair_keys, true_epoch
from eggroll_torch.models.common import MM_PARAM, PARAM
from eggroll_torch.noiser import eggroll
from eggroll_torch.noiser._member import lora_sigma, scalar


def supports(noiser, population_size: int) -> bool:
    """True when the engine computes what ``noiser`` would: upstream's EGGROLL (``"eggroll"``,
    ``"reeggroll"``) with whole antithetic pairs (even N)."""
    return noiser is eggroll.EggRoll and population_size % 2 == 0


@dataclass
class MatrixNoise:
    """One matrix's share of a population forward (see :meth:`PairEngine.forward_noise`)."""

    weight: torch.Tensor
    B: torch.Tensor
    rows: torch.Tensor
    bias: torch.Tensor | None
    bias_noise: torch.Tensor | None
    bias_columns: int


@dataclass
class PairDraws:
    """One epoch's draws for pairs ``pairs``, at the sigma they were drawn for.

    A matrix's draw ``normal(key_p, (in + out, r))`` is kept in two parts, laid out so that the
    draw kernel writes them coalesced and the update's operands are plain views:

    - ``matrices[path]``: ``B``, the rows ``[:in]``, as ``(r, P, in)`` (entry ``[k, p, j]`` is
      entry ``(j, k)`` of pair ``p``'s draw);
    - ``rows[path]``: ``(K, P, out)`` whose first ``r`` rows are ``A = round(c * z[in:])`` in the
      same layout, exactly upstream's ``A`` up to the member's sign; the forward fills the rest
      (see :meth:`PairEngine.forward_noise`).

    ``vectors[path]``: ``(P, *shape)`` unit normals.
    """

    pairs: range
    matrices: dict
    vectors: dict
    rows: dict


def factor_rows(rank: int) -> int:
    """``K``: the rank plus two bias rows, rounded up to a multiple of 8 so that the correction's
    matmul stays aligned for the tensor cores."""
    return -(-(rank + 2) // 8) * 8


class PairEngine:
    """Draws and update for the parameters of one trainer.

    Args:
        params: ``{path: tensor}`` (shapes and dtypes are read once; values at each call).
        classes: ``{path: es class}``. keys: ``{path: uint32 key (2,)}``.
        rank, noise_reuse, freeze_nonlora: the noiser's settings.
    """

    def __init__(self, params: Mapping[str, torch.Tensor], classes: Mapping[str, int],
                 keys: Mapping[str, torch.Tensor], *, rank: int, noise_reuse: int, freeze_nonlora: bool):
        self.rank, self.noise_reuse = rank, noise_reuse
        self.matrix_groups, self.vector_groups = {}, {}
        for path, param in params.items():
            es_class = classes[path]
            if es_class == MM_PARAM:
                group = self.matrix_groups.setdefault((param.shape[1], param.shape[0], param.dtype), [])
            elif es_class == PARAM and not freeze_nonlora:
                group = self.vector_groups.setdefault((tuple(param.shape), param.dtype), [])
            else:
                continue
            group.append(path)
        self.set_keys(keys)

    def set_keys(self, keys: Mapping[str, torch.Tensor]) -> None:
        """Use ``keys`` from now on (after ``load_state_dict``); forgets the cached draws."""
        self._group_keys = {
            group: torch.stack([keys[path] for path in paths])
            for groups in (self.matrix_groups, self.vector_groups) for group, paths in groups.items()
        }
        self._cache_epoch, self._cache = None, {}

    def lora_scale(self, sigma, dtype: torch.dtype) -> float:
        """``c = sigma / sqrt(r)`` as the functional layer computes it, rounded to ``dtype``, as a
        Python float (computed on the host, so a CUDA graph can record a draw that uses it)."""
        return float(lora_sigma(sigma, self.rank, dtype, "cpu").to(dtype))

    def draw(self, epoch, pairs: range, sigma, paths=None) -> PairDraws:
        """The draws of ``pairs`` in ``epoch`` (an int, or a one-element integer tensor on the
        device, as a CUDA graph needs) at noise scale ``sigma``, for every perturbed parameter or
        only ``paths``.

        Draws of an int epoch are kept until the true epoch changes, so the forward and the
        update of an epoch read one draw. A parameter's values do not depend on which other
        parameters or pairs are drawn with it.
        """
        noise_epoch = true_epoch(epoch, self.noise_reuse)
        wanted = None if paths is None else frozenset(paths)
        cacheable = not torch.is_tensor(noise_epoch)
        scales = tuple(sorted((str(dtype), self.lora_scale(sigma, dtype)) for _, _, dtype in self.matrix_groups))
        if cacheable:
            if self._cache_epoch != noise_epoch:
                self._cache_epoch, self._cache = noise_epoch, {}
            for (start, stop, cached_paths, cached_scales), draws in self._cache.items():
                if (start, stop, cached_scales) == (pairs.start, pairs.stop, scales) \
                        and (cached_paths is None or cached_paths == wanted):
                    return draws
        draws = PairDraws(pairs, {}, {}, {})
        for (in_features, out_features, dtype), group in self.matrix_groups.items():
            keys, group = self._selected(in_features, out_features, dtype, group=group, wanted=wanted)
            if group:
                self._draw_matrices(draws, keys, group, epoch, in_features, out_features, dtype, sigma)
        for (shape, dtype), group in self.vector_groups.items():
            keys, group = self._selected(shape, dtype, group=group, wanted=wanted)
            if group:
                drawn = torch.empty(len(group), len(pairs), *shape, dtype=dtype, device=keys.device)
                self._fill(keys, epoch, pairs, drawn.reshape(len(group), len(pairs), -1, 1))
                draws.vectors.update(zip(group, drawn.unbind(0)))
        if cacheable:
            self._cache[pairs.start, pairs.stop, wanted, scales] = draws
        return draws

    def _selected(self, *group_key, group, wanted):
        keys = self._group_keys[group_key]
        if wanted is None:
            return keys, group
        slots = [slot for slot, path in enumerate(group) if path in wanted]
        # uint32 indexing is missing on CUDA in some torch releases; the int32 view is not.
        keys = keys.view(torch.int32)[torch.tensor(slots, dtype=torch.int64, device=keys.device)].view(torch.uint32)
        return keys, [group[slot] for slot in slots]

    def _fill(self, keys, epoch, pairs: range, target, scaled=None) -> None:
        """``target`` ``(L, P, rows, cols)`` = the pairs' draws (split by ``scaled`` as
        :func:`draw_pair_normals` splits them); the fused kernels start at pair 0."""
        if pairs.start == 0:
            draw_pair_normals(keys, epoch, target, noise_reuse=self.noise_reuse, scaled=scaled)
            return
        keys = pair_keys(keys, epoch, len(pairs), self.noise_reuse, first=pairs.start)
        if scaled is None:
            target.copy_(es_random.normal(keys, target.shape[2:], target.dtype))
            return
        out, split, scale = scaled
        whole = es_random.normal(keys, (split + out.shape[2], target.shape[3]), target.dtype)
        target.copy_(whole[:, :, :split])
        torch.mul(whole[:, :, split:], torch.full((), scale, dtype=target.dtype, device=target.device), out=out)

    def _draw_matrices(self, draws, keys, group, epoch, in_features, out_features, dtype, sigma) -> None:
        count, pairs = len(group), len(draws.pairs)
        b_part = torch.empty(count, self.rank, pairs, in_features, dtype=dtype, device=keys.device)
        rows = torch.empty(count, factor_rows(self.rank), pairs, out_features, dtype=dtype, device=keys.device)
        scaled = (rows[:, :self.rank].permute(0, 2, 3, 1), in_features, self.lora_scale(sigma, dtype))
        self._fill(keys, epoch, draws.pairs, b_part.permute(0, 2, 3, 1), scaled)
        draws.matrices.update(zip(group, b_part.unbind(0)))
        draws.rows.update(zip(group, rows.unbind(0)))

    @torch.no_grad()
    def forward_noise(self, draws: PairDraws, params: Mapping[str, torch.Tensor], sigma,
                      biases: Mapping[str, str | None]) -> tuple[dict, dict]:
        """What the population forward reads (see :mod:`.member_ops`):

        - ``{path: MatrixNoise}`` for the matrices: ``B`` ``(P, in, r)`` unit normals and
          ``rows`` ``(P, K, out)`` whose first ``r`` rows are ``A`` (as drawn, see
          :class:`PairDraws`), followed by the rows of the bias that ``biases[path]`` names (its
          two members' values when it is noisy, else its value) and zero rows up to ``K``
          (:func:`factor_rows`);
        - ``{path: (param, sigma * z (P, *shape))}`` for the noisy vectors, rounded likewise.

        The sign is exact, so it is applied later.
        """
        vectors = {}
        for path, z in draws.vectors.items():
            param = params[path]
            vectors[path] = (param, z * scalar(sigma, param.dtype, param.device).to(param.dtype))
        matrices = {}
        for path, b_part in draws.matrices.items():
            param, r = params[path], self.rank
            rows = draws.rows[path]
            bias_path = biases.get(path)
            bias = None if bias_path is None else params[bias_path]
            bias_noise = vectors[bias_path][1] if bias_path in vectors else None
            columns = 0 if bias is None else (1 if bias_noise is None else 2)
            if bias_noise is not None:
                torch.add(bias, bias_noise, out=rows[r])
                torch.sub(bias, bias_noise, out=rows[r + 1])
            elif bias is not None:
                rows[r] = bias
            rows[r + columns:] = 0
            matrices[path] = MatrixNoise(param, b_part.permute(1, 2, 0), rows.permute(1, 0, 2), bias, bias_noise,
                                         columns)
        return matrices, vectors

    def gradients(self, draws: PairDraws, params: Mapping[str, torch.Tensor], fitnesses: torch.Tensor,
                  sigma) -> dict[str, torch.Tensor]:
        """Upstream's descent direction ``-(estimate * sqrt(N))`` of each parameter in ``params``
        (any subset, each computed on its own), from shaped ``fitnesses`` ``(N,)`` of the whole
        population; ``draws`` must cover all its pairs and the perturbed parameters asked for."""
        n = fitnesses.shape[0]
        differences = {}
        grads = {}
        for path, param in params.items():
            if path not in draws.matrices and path not in draws.vectors:
                grads[path] = torch.zeros_like(param)
                continue
            # float32 at least, float64 for float64 parameters, as the functional estimate promotes.
            wide = torch.promote_types(torch.promote_types(fitnesses.dtype, param.dtype), torch.float32)
            if wide not in differences:
                pairs = fitnesses.to(wide).view(-1, 2)
                differences[wide] = (pairs[:, 0] - pairs[:, 1]) * (-math.sqrt(n) / n)
            if path in draws.matrices:
                grads[path] = matrix_gradient(draws.rows[path][:self.rank], draws.matrices[path], differences[wide])
            else:
                s = scalar(sigma, param.dtype, param.device).to(wide)
                z = draws.vectors[path].reshape(n // 2, -1)
                grads[path] = ((differences[wide] * s) @ z.to(wide)).view(param.shape).to(param.dtype)
        return grads


def matrix_gradient(a_part: torch.Tensor, b_part: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_p weights[p] * A_p @ B_p.T`` ``(out, in)`` from ``a_part`` ``(r, P, out)`` and ``b_part``
    ``(r, P, in)``: one ``(out, r*P) @ (r*P, in)`` matmul over views, the weights applied to the
    smaller of the two operands (rounded to their dtype, so the matmul runs at its speed)."""
    a_rows, b_rows = a_part.reshape(-1, a_part.shape[-1]), b_part.reshape(-1, b_part.shape[-1])
    scale = weights.to(a_part.dtype).repeat(a_part.shape[0])[:, None]
    if a_rows.shape[1] <= b_rows.shape[1]:
        return (a_rows * scale).T @ b_rows
    return a_rows.T @ (b_rows * scale)
