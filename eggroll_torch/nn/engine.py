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

Kept draws hold ``P * r * (in + out)`` values for every matrix at once, from the population's
forward to the update: for a population of few tokens per member, more than the forward's own
activations. An engine built with ``keep=False`` keeps only the vectors' draws and hands out
:class:`DeferredDraws`: each matrix's noise is drawn where the forward multiplies by it and again
where the update needs it, one matrix at a time, the same values bit for bit at the cost of a
second draw.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

import torch

from eggroll_torch import random as es_random
from eggroll_torch.fast.dispatch import below_autograd
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

    def materialize(self) -> MatrixNoise:
        """This noise (see :meth:`DeferredMatrixNoise.materialize`)."""
        return self


@dataclass
class DeferredMatrixNoise:
    """A matrix's share of a population forward, drawn only when the forward multiplies by it.

    ``weight`` is the matrix the forward recognizes; :meth:`materialize` draws its noise and
    returns the :class:`MatrixNoise` that kept draws would have given, bit for bit. Nothing keeps
    the result: it lives as long as the caller holds it, so a forward that drops it after the
    product holds one matrix's noise at a time.
    """

    weight: torch.Tensor
    make: Callable[[], MatrixNoise]

    def materialize(self) -> MatrixNoise:
        """Draw the noise now."""
        return self.make()


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

    ``derived`` holds what the forward and the update compute from the draws alone (views,
    ``sigma``-scaled vectors), so that every population and update of the epoch reuses them.
    """

    pairs: range
    matrices: dict
    vectors: dict
    rows: dict
    derived: dict = field(default_factory=dict)

    def memo(self, key, make):
        """``make()``, computed once for ``key`` and kept with the draws; ``key=None`` (a value
        that depends on a tensor ``sigma``, which may change in place) computes it every time."""
        if key is None:
            return make()
        value = self.derived.get(key)
        if value is None:
            value = self.derived[key] = make()
        return value


@dataclass
class DeferredDraws:
    """An epoch's draws for pairs ``pairs`` as a ``keep=False`` engine hands them out: the
    vectors' draws ``vectors`` (small, kept) and the matrices ``matrices``, drawn anew wherever
    :meth:`PairEngine.forward_noise` and :meth:`PairEngine.gradients` need them."""

    epoch: object
    pairs: range
    sigma: object
    matrices: tuple
    vectors: PairDraws


def factor_rows(rank: int, device: torch.device, bias_rows: int = 2) -> int:
    """``K``: the rank plus ``bias_rows`` rows for a folded bias (two where a matrix of the group
    has one, else none); on CUDA rounded up to a multiple of 8 so that the correction's matmul
    stays aligned for the tensor cores (on the CPU padding rows would only add a pass that zeroes
    them)."""
    if torch.device(device).type != "cuda":
        return rank + bias_rows
    return -(-(rank + bias_rows) // 8) * 8


class PairEngine:
    """Draws and update for the parameters of one trainer.

    Args:
        params: ``{path: tensor}`` (shapes and dtypes are read once; values at each call).
        classes: ``{path: es class}``. keys: ``{path: uint32 key (2,)}``.
        rank, noise_reuse, freeze_nonlora: the noiser's settings.
        biased: the matrices whose bias the forward may fold into their factor rows; a group of
            matrices none of which has one keeps no bias rows (less memory for the epoch's
            draws). None (default): every group keeps them.
        keep: True (default) keeps an epoch's draws from the forward to the update; False hands
            out :class:`DeferredDraws` and draws each matrix where it is used.
    """

    def __init__(self, params: Mapping[str, torch.Tensor], classes: Mapping[str, int],
                 keys: Mapping[str, torch.Tensor], *, rank: int, noise_reuse: int, freeze_nonlora: bool,
                 biased=None, keep: bool = True):
        self.rank, self.noise_reuse, self.keep = rank, noise_reuse, keep
        self.matrix_groups, self.vector_groups = {}, {}
        self._scales = {}
        for path, param in params.items():
            es_class = classes[path]
            if es_class == MM_PARAM:
                group = self.matrix_groups.setdefault((param.shape[1], param.shape[0], param.dtype), [])
            elif es_class == PARAM and not freeze_nonlora:
                group = self.vector_groups.setdefault((tuple(param.shape), param.dtype), [])
            else:
                continue
            group.append(path)
        self._bias_row_counts = {group: 2 if biased is None or any(path in biased for path in paths) else 0
                                 for group, paths in self.matrix_groups.items()}
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

    def _draw_scales(self, sigma) -> tuple:
        """``(dtype name, lora_scale)`` of every matrix dtype: what a cached draw was drawn for.
        Kept per Python ``sigma``, which is fixed for a trainer's life; a tensor is read anew."""
        if torch.is_tensor(sigma):
            return self._compute_scales(sigma)
        scales = self._scales.get(sigma)
        if scales is None:
            scales = self._scales[sigma] = self._compute_scales(sigma)
        return scales

    def _compute_scales(self, sigma) -> tuple:
        return tuple(sorted((str(dtype), self.lora_scale(sigma, dtype)) for _, _, dtype in self.matrix_groups))

    def draw(self, epoch, pairs: range, sigma, paths=None) -> PairDraws | DeferredDraws:
        """The draws of ``pairs`` in ``epoch`` (an int, or a one-element integer tensor on the
        device, as a CUDA graph needs) at noise scale ``sigma``, for every perturbed parameter or
        only ``paths``.

        Draws of an int epoch are kept until the true epoch changes, so the forward and the
        update of an epoch read one draw; a ``keep=False`` engine keeps the vectors' draws only
        and returns :class:`DeferredDraws`. A parameter's values do not depend on which other
        parameters or pairs are drawn with it.
        """
        wanted = None if paths is None else frozenset(paths)
        if self.keep:
            return self._draw(epoch, pairs, sigma, wanted, cache=True)
        vectors = frozenset(path for group in self.vector_groups.values() for path in group
                            if wanted is None or path in wanted)
        matrices = tuple(path for group in self.matrix_groups.values() for path in group
                         if wanted is None or path in wanted)
        return DeferredDraws(epoch, pairs, sigma, matrices, self._draw(epoch, pairs, sigma, vectors, cache=True))

    def _draw(self, epoch, pairs: range, sigma, wanted: frozenset | None, cache: bool) -> PairDraws:
        noise_epoch = true_epoch(epoch, self.noise_reuse)
        cacheable = cache and not torch.is_tensor(noise_epoch)
        scales = self._draw_scales(sigma)
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
        if slots and slots == list(range(slots[0], slots[-1] + 1)):
            # A run of slots is a view: no index tensor to copy to the device (or into a graph).
            return keys[slots[0]:slots[-1] + 1], group[slots[0]:slots[-1] + 1]
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
        bias_count = self._bias_row_counts[in_features, out_features, dtype]
        rows = torch.empty(count, factor_rows(self.rank, keys.device, bias_count), pairs, out_features, dtype=dtype,
                           device=keys.device)
        if rows.shape[1] > self.rank + bias_count:
            # The padding rows past the bias rows stay zero (see forward_noise).
            rows[:, self.rank + bias_count:] = 0
        scaled = (rows[:, :self.rank].permute(0, 2, 3, 1), in_features, self.lora_scale(sigma, dtype))
        self._fill(keys, epoch, draws.pairs, b_part.permute(0, 2, 3, 1), scaled)
        draws.matrices.update(zip(group, b_part.unbind(0)))
        draws.rows.update(zip(group, rows.unbind(0)))

    @torch.no_grad()
    def forward_noise(self, draws: PairDraws | DeferredDraws, params: Mapping[str, torch.Tensor], sigma,
                      biases: Mapping[str, str | None]) -> tuple[dict, dict]:
        """What the population forward reads (see :mod:`.member_ops`):

        - ``{path: MatrixNoise}`` for the matrices (``{path: DeferredMatrixNoise}`` for
          :class:`DeferredDraws`, whose ``materialize()`` gives the same): ``B`` ``(P, in, r)`` unit normals and
          ``rows`` ``(P, K, out)`` whose first ``r`` rows are ``A`` (as drawn, see
          :class:`PairDraws`), followed by the rows of the bias that ``biases[path]`` names (its
          two members' values when it is noisy, else its value) and zero rows up to ``K``
          (:func:`factor_rows`; a group drawn without bias rows has ``K = r`` on the CPU, and
          its matrices' biases are left to the forward);
        - ``{path: (param, sigma * z (P, *shape))}`` for the noisy vectors, rounded likewise.

        The sign is exact, so it is applied later. Only the bias rows depend on ``params``: the
        rest is computed once per draws (and ``sigma``).
        """
        # Nothing here is differentiated (no_grad): below autograd the same ops cost less.
        with below_autograd():
            if isinstance(draws, DeferredDraws):
                matrices, vectors = self._forward_noise(draws.vectors, params, sigma, biases)
                matrices.update({path: DeferredMatrixNoise(params[path], partial(
                    self._deferred_matrix_noise, draws, path, params, sigma, biases)) for path in draws.matrices})
                return matrices, vectors
            return self._forward_noise(draws, params, sigma, biases)

    def _deferred_matrix_noise(self, draws: DeferredDraws, path: str, params: Mapping[str, torch.Tensor], sigma,
                               biases: Mapping[str, str | None]) -> MatrixNoise:
        with torch.no_grad(), below_autograd():
            drawn = self._draw_matrix(draws, path)
            scaled = self._scaled(draws.vectors, sigma)
            (entry,) = self._forward_plan(drawn, scaled, biases)
            return self._matrix_noise(entry, params, scaled)

    def _draw_matrix(self, draws: DeferredDraws, path: str) -> PairDraws:
        """The draws of the one matrix ``path`` of deferred ``draws``, kept by nobody but the caller."""
        return self._draw(draws.epoch, draws.pairs, draws.sigma, frozenset((path,)), cache=False)

    def _scaled(self, draws: PairDraws, sigma) -> dict:
        sigma_key = None if torch.is_tensor(sigma) else sigma
        return draws.memo(None if sigma_key is None else ("scaled", sigma_key), lambda: _scaled_vectors(draws, sigma))

    def _forward_noise(self, draws: PairDraws, params: Mapping[str, torch.Tensor], sigma,
                       biases: Mapping[str, str | None]) -> tuple[dict, dict]:
        sigma_key = None if torch.is_tensor(sigma) else sigma
        scaled = self._scaled(draws, sigma)
        plan = draws.memo(None if sigma_key is None else ("forward", sigma_key, tuple(biases.items())),
                          lambda: self._forward_plan(draws, scaled, biases))
        vectors = {path: (params[path], noise) for path, noise in scaled.items()}
        return {entry[0]: self._matrix_noise(entry, params, scaled) for entry in plan}, vectors

    @staticmethod
    def _matrix_noise(entry: tuple, params: Mapping[str, torch.Tensor], scaled: dict) -> MatrixNoise:
        """A matrix's :class:`MatrixNoise` from its :meth:`_forward_plan` entry, its bias rows
        filled from the current ``params``."""
        path, B, factor, bias_path, signed, bias_rows = entry
        bias = None if bias_path is None else params[bias_path]
        if bias_rows is None:
            # No bias rows in this group's draws: the forward adds the bias after the product.
            return MatrixNoise(params[path], B, factor, None, None, 0)
        if signed is not None:
            torch.add(bias, signed, out=bias_rows)
            return MatrixNoise(params[path], B, factor, bias, scaled[bias_path], 2)
        if bias is not None:
            bias_rows[0] = bias
            bias_rows[1] = 0
            return MatrixNoise(params[path], B, factor, bias, None, 1)
        bias_rows.zero_()
        return MatrixNoise(params[path], B, factor, None, None, 0)

    def _forward_plan(self, draws: PairDraws, scaled: dict, biases: Mapping[str, str | None]) -> list:
        """Per matrix, what :meth:`forward_noise` reads that depends on the draws alone: its path,
        ``B`` and the factor rows as the forward reads them, its bias path, both members' bias
        noise (or None when the bias is not noisy) and the two bias rows to fill (None where the
        draws have no room for them)."""
        plan = []
        for path, rows in draws.rows.items():
            bias_path = biases.get(path)
            bias_rows = rows[self.rank:self.rank + 2] if rows.shape[0] >= self.rank + 2 else None
            # Both members' biases in one pass: bias - z is bias + (-z), bit for bit.
            signed = torch.stack([scaled[bias_path], -scaled[bias_path]]) \
                if bias_path in scaled and bias_rows is not None else None
            plan.append((path, draws.matrices[path].permute(1, 2, 0), rows.permute(1, 0, 2), bias_path, signed,
                         bias_rows))
        return plan

    def gradients(self, draws: PairDraws | DeferredDraws, params: Mapping[str, torch.Tensor],
                  fitnesses: torch.Tensor, sigma) -> dict[str, torch.Tensor]:
        """Upstream's descent direction ``-(estimate * sqrt(N))`` of each parameter in ``params``
        (any subset, each computed on its own), from shaped ``fitnesses`` ``(N,)`` of the whole
        population; ``draws`` must cover all its pairs and the perturbed parameters asked for.
        :class:`DeferredDraws` draw each matrix just before its gradient and drop it after."""
        with below_autograd(fitnesses):
            if not isinstance(draws, DeferredDraws):
                return self._gradients(draws, params, fitnesses, sigma)
            matrices = frozenset(draws.matrices)
            # The pair weights are computed once for all the calls below, as one call shares them.
            shared = {}, {}
            grads = self._gradients(draws.vectors, {path: param for path, param in params.items()
                                                    if path not in matrices}, fitnesses, sigma, shared)
            for path in draws.matrices:
                if path in params:
                    grads.update(self._gradients(self._draw_matrix(draws, path), {path: params[path]}, fitnesses,
                                                 sigma, shared))
            return {path: grads[path] for path in params}

    def _gradients(self, draws: PairDraws, params: Mapping[str, torch.Tensor], fitnesses: torch.Tensor,
                   sigma, shared: tuple[dict, dict] | None = None) -> dict[str, torch.Tensor]:
        """``shared``: the ``(differences, weights)`` caches of :meth:`gradients`' calls for one
        update (fresh ones by default)."""
        n = fitnesses.shape[0]
        sigma_key = None if torch.is_tensor(sigma) else sigma
        plan = draws.memo(None if sigma_key is None else ("update", tuple(params), fitnesses.dtype, sigma_key),
                          lambda: self._update_plan(draws, params, fitnesses.dtype, sigma))
        differences, weights = shared if shared is not None else ({}, {})
        grads = {}
        for path, matrix, operands, wide, dtype, scale, shape in plan:
            if operands is None:
                grads[path] = torch.zeros_like(params[path])
                continue
            difference = differences.get(wide)
            if difference is None:
                even, odd = (fitnesses if fitnesses.dtype == wide else fitnesses.to(wide)).view(-1, 2).unbind(1)
                difference = differences[wide] = (even - odd) * (-math.sqrt(n) / n)
            # The pair weights as each kind of leaf applies them, shared by the leaves of a dtype.
            kind = (matrix, wide, dtype)
            weight = weights.get(kind)
            if weight is None:
                if matrix:
                    weight = (difference if difference.dtype == dtype else difference.to(dtype)).view(1, -1, 1)
                else:
                    weight = difference * scale
                weights[kind] = weight
            if matrix:
                grads[path] = _matrix_gradient(operands, weight)
            else:
                grad = weight @ operands
                grad = grad if shape is None else grad.view(shape)
                grads[path] = grad if grad.dtype == dtype else grad.to(dtype)
        return grads

    def _update_plan(self, draws: PairDraws, params: Mapping[str, torch.Tensor], fitness_dtype: torch.dtype,
                     sigma) -> list:
        """Per parameter, what :meth:`gradients` reads that depends on the draws alone: its path,
        whether it is a matrix, the draws as the matmul's operands (None: not perturbed), the
        dtype the estimate is computed in, the parameter's dtype and, for a vector, ``sigma`` in
        the estimate's dtype and the parameter's shape where it is not 1-D."""
        plan = []
        for path, param in params.items():
            # float32 at least, float64 for float64 parameters, as the functional estimate promotes.
            wide = torch.promote_types(torch.promote_types(fitness_dtype, param.dtype), torch.float32)
            if path in draws.matrices:
                operands = _matrix_operands(draws.rows[path][:self.rank], draws.matrices[path])
                plan.append((path, True, operands, wide, param.dtype, None, None))
            elif path in draws.vectors:
                z = draws.vectors[path].reshape(len(draws.pairs), -1)
                scale = scalar(sigma, param.dtype, param.device).to(wide)
                plan.append((path, False, z if z.dtype == wide else z.to(wide), wide, param.dtype, scale,
                             None if param.ndim == 1 else param.shape))
            else:
                plan.append((path, False, None, wide, param.dtype, None, None))
        return plan


def _scaled_vectors(draws: PairDraws, sigma) -> dict[str, torch.Tensor]:
    """``sigma * z`` of every drawn vector, ``sigma`` rounded as the functional layer rounds it."""
    return {path: z * scalar(sigma, z.dtype, z.device).to(z.dtype) for path, z in draws.vectors.items()}


def _matrix_operands(a_part: torch.Tensor, b_part: torch.Tensor) -> tuple:
    """How :func:`_matrix_gradient` multiplies ``a_part`` ``(r, P, out)`` and ``b_part``
    ``(r, P, in)``: the weights go on the smaller one (so the matmul runs at the draws' dtype and
    speed), the other is kept as the matmul's operand."""
    if a_part.shape[-1] <= b_part.shape[-1]:
        return True, a_part, b_part.reshape(-1, b_part.shape[-1])
    return False, b_part, a_part.reshape(-1, a_part.shape[-1]).T


def _matrix_gradient(operands: tuple, weights: torch.Tensor) -> torch.Tensor:
    """``sum_p weights[p] * A_p @ B_p.T`` ``(out, in)`` as one ``(out, r*P) @ (r*P, in)`` matmul;
    ``weights`` ``(1, P, 1)`` in the draws' dtype."""
    scale_a, scaled, other = operands
    if scale_a:
        return (scaled * weights).reshape(-1, scaled.shape[-1]).T @ other
    return other @ (scaled * weights).reshape(-1, scaled.shape[-1])
