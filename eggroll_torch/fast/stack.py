"""EGGROLL for a stack of linear layers ``x -> act(x @ W.T + b)``, computed population-wide.

This is the fast path for MLP-shaped models (upstream's ``common.MLP`` and the square-layer
benchmark models): all members' noise for all layers is drawn in bulk (:mod:`.noise`), the
forward runs one shared matmul per layer plus rank-``r`` corrections (:mod:`.lowrank`), and the
update is one matmul per layer (:mod:`.update`). The noise is the functional layer's, bit for
bit: member ``n`` of epoch ``e`` uses ``thread_id = n`` and ``fold_in(fold_in(key, true_epoch),
n // 2)`` for every parameter, as upstream's examples do with ``iterinfo = (full(N, e), arange(N))``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from eggroll_torch import random as es_random
from .lowrank import fused_available, lora_scale, member_signs, perturbed_linear, project, split_factors
from .noise import draw_pair_normals, true_epoch
from .update import matrix_sgd_, matrix_step, pair_weights, vector_step


def _rows(keys: torch.Tensor, index) -> torch.Tensor:
    # Advanced indexing of uint32 tensors is missing on CUDA in some torch releases (2.11): the
    # int32 view holds the same words and indexes everywhere.
    return keys.view(torch.int32)[index].view(torch.uint32)


def layer_keys(es_key: torch.Tensor, num_layers: int, with_bias: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Keys ``(L, 2)`` of the weights (and biases) of layers named ``"0" .. str(L-1)``.

    Upstream's ``simple_es_tree_key`` splits ``es_key`` into one key per leaf in
    ``jax.tree.flatten`` order: layer names sorted as strings, and ``"bias"`` before
    ``"weight"`` inside a layer when there are biases.
    """
    order = sorted(range(num_layers), key=str)
    per_layer = 2 if with_bias else 1
    keys = es_random.split(es_key, num_layers * per_layer)
    slot = torch.tensor([order.index(layer) for layer in range(num_layers)]) * per_layer
    if not with_bias:
        return _rows(keys, slot), None
    return _rows(keys, slot + 1), _rows(keys, slot)


@dataclass
class StackNoise:
    """One epoch's draws: ``factors[l]`` ``(P, r, in + out)`` and ``bias_noise[l]`` ``(P, out)``
    (None without biases), as unit normals before sign and sigma.

    ``derived`` caches values computed from the draws (scaled factors, per-member bias noise),
    which live as long as the draws are reused (``noise_reuse``).
    """

    factors: list
    bias_noise: list | None
    derived: dict = field(default_factory=dict)

    def cached(self, key, compute):
        """``compute()``, computed once per draw."""
        if key not in self.derived:
            self.derived[key] = compute()
        return self.derived[key]


class LowRankStack:
    """A stack of linear layers trained with EGGROLL by a population of ``num_members``.

    Args:
        weights: ``(out, in)`` tensors, chained (``in`` of layer ``l + 1`` = ``out`` of ``l``);
            updated in place by :meth:`sgd_step_`.
        weight_keys: ``(L, 2)`` uint32 keys, one per weight (see :func:`layer_keys`).
        sigma, rank: upstream's noise scale and low rank.
        num_members: N, even (pairs ``2p, 2p + 1`` share noise with opposite signs).
        activation: between layers (none after the last): ``"tanh"``, ``"relu"``, ``"identity"``.
        biases, bias_keys: optional ``(out,)`` tensors (``PARAM`` leaves) and their ``(L, 2)`` keys.
        noise_reuse: upstream's meaning (0: the same noise every epoch, which is then drawn once).
        variant: the normal table of ``eggroll_torch.random.normal``.
        fused: use the Triton forward kernels where they apply (default: whenever they are usable).
        noise_kernel: how noise is drawn, as :func:`.noise.draw_pair_normals`'s ``kernel``
            (``"auto"``, ``"triton"``, ``"c"`` or None for torch ops); the values are the same.
    """

    def __init__(self, weights: Sequence[torch.Tensor], weight_keys: torch.Tensor, *, sigma: float, rank: int,
                 num_members: int, activation: str = "tanh", biases: Sequence[torch.Tensor] | None = None,
                 bias_keys: torch.Tensor | None = None, noise_reuse: int = 1, variant: str = "cpu",
                 fused: bool | None = None, noise_kernel: str | None = "auto"):
        weights = list(weights)
        _check_stack(weights, weight_keys, biases, bias_keys, rank, num_members, activation)
        self.weights = weights
        self.biases = None if biases is None else list(biases)
        self.weight_keys, self.bias_keys = weight_keys, bias_keys
        self.sigma, self.rank, self.num_members = sigma, rank, num_members
        self.activation, self.noise_reuse, self.variant = activation, noise_reuse, variant
        self.fused = fused
        self.noise_kernel = noise_kernel
        device, dtype = weights[0].device, weights[0].dtype
        self.signs = member_signs(num_members, device)
        self._a_scale = lora_scale(sigma, rank, dtype)
        self._lora_scale = lora_scale(sigma, rank, torch.float32)
        pairs = num_members // 2
        self._groups = _group_by(lambda w: w.shape[0] + w.shape[1], weights)
        # Each group's keys are gathered once here: indexing with a Python list inside draw()
        # would copy the index to the device every call, which CUDA graph capture forbids.
        self._group_keys = {rows: _rows(weight_keys, torch.tensor(ids, device=device))
                            for rows, ids in self._groups.items()}
        self._factor_bufs = {rows: torch.empty(len(ids), pairs, rank, rows, dtype=dtype, device=device)
                             for rows, ids in self._groups.items()}
        if self.biases is not None:
            self._bias_groups = _group_by(lambda b: b.shape[0], self.biases)
            self._bias_group_keys = {size: _rows(bias_keys, torch.tensor(ids, device=device))
                                     for size, ids in self._bias_groups.items()}
            self._bias_bufs = {size: torch.empty(len(ids), pairs, size, 1, dtype=dtype, device=device)
                               for size, ids in self._bias_groups.items()}
        self._drawn_for = None
        self._noise = None

    def draw(self, epoch) -> StackNoise:
        """The noise of ``epoch`` (an int, or a one-element integer tensor for graph capture).

        With an int epoch, a draw whose true epoch (see ``noise_reuse``) equals the previous
        one's is reused rather than recomputed.
        """
        cached = None if torch.is_tensor(epoch) else true_epoch(epoch, self.noise_reuse)
        if cached is not None and cached == self._drawn_for:
            return self._noise
        for rows in self._groups:
            draw_pair_normals(self._group_keys[rows], epoch, self._factor_bufs[rows].transpose(2, 3),
                              noise_reuse=self.noise_reuse, variant=self.variant, kernel=self.noise_kernel)
        if self.biases is not None:
            for size in self._bias_groups:
                draw_pair_normals(self._bias_group_keys[size], epoch, self._bias_bufs[size],
                                  noise_reuse=self.noise_reuse, variant=self.variant, kernel=self.noise_kernel)
        self._drawn_for = cached
        factors = [None] * len(self.weights)
        for rows, ids in self._groups.items():
            for slot, layer in enumerate(ids):
                factors[layer] = self._factor_bufs[rows][slot]
        bias_noise = None
        if self.biases is not None:
            bias_noise = [None] * len(self.biases)
            for size, ids in self._bias_groups.items():
                for slot, layer in enumerate(ids):
                    bias_noise[layer] = self._bias_bufs[size][slot, :, :, 0]
        self._noise = StackNoise(factors, bias_noise)
        return self._noise

    def _member_biases(self, layer: int, noise: StackNoise) -> torch.Tensor:
        def offsets():
            z = noise.bias_noise[layer].repeat_interleave(2, dim=0)
            return z * (self.signs * self.sigma).to(z.dtype)[:, None]

        return self.biases[layer] + noise.cached(("bias", layer), offsets)

    def forward(self, x: torch.Tensor, noise: StackNoise, *, reduce: str | None = None) -> torch.Tensor:
        """Every member's output: ``x`` ``(N, T, in)`` (member ``n`` reads ``x[n]``) ->
        ``(N, T, out)``, or with ``reduce="mean"`` the ``(N,)`` float32 mean of each member's outputs.
        """
        if x.ndim != 3 or x.shape[0] != self.num_members or x.shape[2] != self.weights[0].shape[1]:
            raise ValueError(
                f"x must be (N={self.num_members}, T, in={self.weights[0].shape[1]}); got {tuple(x.shape)}"
            )
        if reduce not in (None, "mean"):
            raise ValueError(f"reduce must be None or 'mean'; got {reduce!r}")
        rows = x.shape[1]
        fused = self.biases is None and (self.fused is not False) and fused_available(x, rows)
        h = x.reshape(-1, x.shape[2])
        xb = project(h, split_factors(noise.factors[0], h.shape[1])[0], rows_per_member=rows, fused=fused)
        last = len(self.weights) - 1
        for layer, weight in enumerate(self.weights):
            a_t, a_scale = split_factors(noise.factors[layer], weight.shape[1])[1], self._a_scale
            if not fused:
                a_t = noise.cached(("a", layer), lambda a_t=a_t: a_t * a_scale)
                a_scale = 1.0
            b_next = None if layer == last else split_factors(noise.factors[layer + 1], weight.shape[0])[0]
            bias = None if self.biases is None else self._member_biases(layer, noise)
            h, xb, sums = perturbed_linear(
                h, weight, a_t, xb, self.signs, a_scale, rows_per_member=rows,
                activation="identity" if layer == last else self.activation, bias=bias, b_next_t=b_next,
                row_sums=reduce == "mean" and layer == last, fused=fused,
            )
        if reduce == "mean":
            return sums.view(self.num_members, rows).sum(1) / (rows * self.weights[-1].shape[0])
        return h.view(self.num_members, rows, -1)

    def gradients(self, fitnesses: torch.Tensor, noise: StackNoise) -> tuple[list, list | None]:
        """Upstream's ``-(estimate * sqrt(N))`` for every weight (and bias), from shaped fitnesses ``(N,)``."""
        weights = pair_weights(fitnesses, -self._lora_scale)
        grads = [matrix_step(f, weights, w.shape[1]) for f, w in zip(noise.factors, self.weights)]
        if self.biases is None:
            return grads, None
        bias_weights = pair_weights(fitnesses, -float(self.sigma))
        return grads, [vector_step(z, bias_weights) for z in noise.bias_noise]

    def sgd_step_(self, fitnesses: torch.Tensor, noise: StackNoise, lr: float) -> None:
        """In place, every weight and bias: ``param -= lr * gradient`` (optax ``sgd(lr)``)."""
        weights = pair_weights(fitnesses, self._lora_scale)
        for factors, weight in zip(noise.factors, self.weights):
            matrix_sgd_(weight, factors, weights, lr)
        if self.biases is not None:
            bias_weights = pair_weights(fitnesses, float(self.sigma))
            for z, bias in zip(noise.bias_noise, self.biases):
                bias.add_(vector_step(z, bias_weights), alpha=lr)


def _group_by(size_of, tensors) -> dict:
    groups: dict = {}
    for index, t in enumerate(tensors):
        groups.setdefault(size_of(t), []).append(index)
    return groups


def _check_stack(weights, weight_keys, biases, bias_keys, rank, num_members, activation):
    if not weights or any(not isinstance(w, torch.Tensor) or w.ndim != 2 for w in weights):
        raise ValueError("weights must be a non-empty sequence of 2-D (out, in) tensors")
    for index in range(1, len(weights)):
        if weights[index].shape[1] != weights[index - 1].shape[0]:
            raise ValueError(
                f"weights[{index}] takes {weights[index].shape[1]} inputs but weights[{index - 1}] gives "
                f"{weights[index - 1].shape[0]} outputs; the layers must chain"
            )
    if len({(w.dtype, w.device) for w in weights}) != 1:
        raise ValueError("all weights must share one dtype and one device")
    for name, keys, count in (("weight_keys", weight_keys, len(weights)),
                              ("bias_keys", bias_keys, len(weights) if biases is not None else None)):
        if count is None:
            continue
        if not isinstance(keys, torch.Tensor) or keys.dtype != torch.uint32 or tuple(keys.shape) != (count, 2):
            raise TypeError(f"{name} must be a torch.uint32 tensor of shape ({count}, 2); see layer_keys()")
    if biases is not None and [tuple(b.shape) for b in biases] != [(w.shape[0],) for w in weights]:
        raise ValueError("biases must hold one (out,) tensor per weight")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be an int >= 1, got {rank!r}")
    if isinstance(num_members, bool) or not isinstance(num_members, int) or num_members < 2 or num_members % 2:
        raise ValueError(f"num_members must be an even int >= 2 (antithetic pairs), got {num_members!r}")
    if activation not in ("tanh", "relu", "identity"):
        raise ValueError(f"activation must be 'tanh', 'relu' or 'identity'; got {activation!r}")
