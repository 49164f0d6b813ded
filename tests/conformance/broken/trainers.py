"""The trainer catalog: ``eggroll_torch.nn.EggrollTrainer``, the engine users run, with ONE
behaviour broken per class, each caught by the trainer check whose id names it.

:mod:`.catalog` breaks the functional layer the operation checks call; these break the trainer
itself, where a regression of the pair engine (:mod:`eggroll_torch.nn.engine`) and its bulk
noise (:mod:`eggroll_torch.fast.noise`), of the key assignment, the fitness shaping or the
solver would land, and are judged only through ``step`` as any trainer-level port is. Every bug
lives in a subclass (of ``EggrollTrainer``, of its ``PairEngine``, of ``scale_by_adam``'s
transformation) or in the built trainer's own instance attributes, so nothing outside the
trainer a mutant builds changes. Usable as plug-ins too, e.g.
``PYTHONPATH=tests/conformance python -m conformance certify-ports --backend broken.trainers:NoInvSqrtRank``.
"""
from __future__ import annotations

import math

import torch

from conformance.adapters.trainer_eggroll_torch import EggrollTorchTrainerLevel
from eggroll_torch import random as es_random
from eggroll_torch import tree
from eggroll_torch.nn import EggrollTrainer
from eggroll_torch.nn.engine import PairEngine
from eggroll_torch.noiser._fitness import VARIANCE_EPS, standardize_unchecked
from eggroll_torch.noiser._member import scalar
from eggroll_torch.optim import (GradientTransformation, add_decayed_weights, chain, scale_by_adam,
                                 scale_by_learning_rate)


class TrainerMutant(EggrollTorchTrainerLevel):
    """The control adapter building a broken trainer. Subclasses set ``bug`` (what regressed),
    ``flagged_by`` (the trainer check whose id names it) and the broken part: ``trainer_class``
    (an ``EggrollTrainer`` subclass) or ``engine_class`` (a ``PairEngine`` subclass that replaces
    the engine the trainer built, made from the same arguments). Left as they are, the build is
    the control's, exactly."""

    # "broken.trainers.<class>", like the catalog's "broken.<class>"; no "/", since certify-ports
    # names its report files after the port.
    name = "broken.trainers.TrainerMutant"
    bug = ""
    flagged_by = ""
    trainer_class: type[EggrollTrainer] = EggrollTrainer
    engine_class: type[PairEngine] | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.name = f"broken.trainers.{cls.__name__}"

    def build(self, module, config):
        # The control's argument mapping (its build names EggrollTrainer itself, so it cannot be reused).
        trainer = self.trainer_class(module, config.sigma, config.lr, population_size=config.population,
                                     rank=config.rank, noise_reuse=config.noise_reuse, group_size=config.group_size,
                                     solver=config.solver, solver_kwargs=config.solver_options, seed=config.seed)
        if self.engine_class is not None and trainer._engine is not None:
            frozen = trainer.frozen_noiser_params
            trainer._engine = self.engine_class(trainer._current_params(), trainer.es_classes, trainer.keys,
                                                rank=frozen["rank"], noise_reuse=frozen["noise_reuse"],
                                                freeze_nonlora=frozen["freeze_nonlora"],
                                                biased=frozenset(trainer._linear_biases))
        return trainer


# ---- the pair engine's bulk noise -------------------------------------------------------------


class _UnscaledLoraEngine(PairEngine):
    def lora_scale(self, sigma, dtype):
        return float(scalar(sigma, dtype, "cpu").to(dtype))


class NoInvSqrtRank(TrainerMutant):
    """Seam: ``PairEngine.lora_scale``, the ``c`` the draw kernels fold into ``A``."""

    bug = "the pair engine scales A by sigma instead of sigma / sqrt(rank)"
    flagged_by = "noise.lowrank_scale"
    engine_class = _UnscaledLoraEngine


class _RankOneEngine(PairEngine):
    def __init__(self, params, classes, keys, *, rank, noise_reuse, freeze_nonlora, biased=None):
        super().__init__(params, classes, keys, rank=1, noise_reuse=noise_reuse, freeze_nonlora=freeze_nonlora,
                         biased=biased)


class EngineAtRankOne(TrainerMutant):
    """Seam: ``PairEngine.__init__``: the rank the draws, the forward and the update are sized by."""

    bug = "the pair engine is built at rank 1 whatever the trainer's rank (the keyword not passed through)"
    flagged_by = "noise.member_rank"
    engine_class = _RankOneEngine


class _FirstKeyEngine(PairEngine):
    def set_keys(self, keys):
        super().set_keys(keys)
        self._group_keys = {group: stacked[:1].expand_as(stacked).contiguous()
                            for group, stacked in self._group_keys.items()}


class GroupSharesFirstKey(TrainerMutant):
    """Seam: ``PairEngine.set_keys``: the ``(L, 2)`` key stack one bulk draw of a shape group reads."""

    bug = "the bulk draw of a group of same-shaped layers uses the group's first key for every layer"
    flagged_by = "noise.independence"
    engine_class = _FirstKeyEngine


class _ReuseZeroAsOneEngine(PairEngine):
    def __init__(self, params, classes, keys, *, rank, noise_reuse, freeze_nonlora, biased=None):
        super().__init__(params, classes, keys, rank=rank, noise_reuse=noise_reuse or 1,
                         freeze_nonlora=freeze_nonlora, biased=biased)


class FreshNoiseReuseZero(TrainerMutant):
    """Seam: ``PairEngine.__init__``: the ``noise_reuse`` its ``true_epoch`` is computed with."""

    bug = "noise_reuse=0 is read as 'no reuse': the pair engine redraws the noise every epoch"
    flagged_by = "noise.reuse_epochs"
    engine_class = _ReuseZeroAsOneEngine


class _ModuloEpochEngine(PairEngine):
    def draw(self, epoch, pairs, sigma, paths=None):
        # (epoch % k) * k is the epoch whose true_epoch (epoch // k) is epoch % k.
        k = self.noise_reuse
        return super().draw(epoch if k == 0 else (epoch % k) * k, pairs, sigma, paths)


class ReuseModulo(TrainerMutant):
    """Seam: ``PairEngine.draw``: the epoch folded into the pair keys."""

    bug = "the pair engine's noise epoch is epoch % noise_reuse instead of epoch // noise_reuse"
    flagged_by = "noise.reuse_epochs"
    engine_class = _ModuloEpochEngine


class _BiasSameSignEngine(PairEngine):
    def forward_noise(self, draws, params, sigma, biases):
        matrices, vectors = super().forward_noise(draws, params, sigma, biases)
        for noise in matrices.values():
            if noise.bias_columns == 2:
                # rows is (P, K, out): row r is the even member's bias, row r + 1 the odd one's.
                noise.rows[:, self.rank + 1] = noise.rows[:, self.rank]
        return matrices, vectors


class FoldedBiasSameSign(TrainerMutant):
    """Seam: ``PairEngine.forward_noise``: the bias rows folded into the low-rank correction."""

    bug = "the odd member's folded bias row gets bias + noise, as the even member's, instead of bias - noise"
    flagged_by = "signs.antithetic_exact"
    engine_class = _BiasSameSignEngine


class _VectorsAtLoraScaleEngine(PairEngine):
    def forward_noise(self, draws, params, sigma, biases):
        return super().forward_noise(draws, params, sigma / math.sqrt(self.rank), biases)


class VectorNoiseAtLoraScale(TrainerMutant):
    """Seam: ``PairEngine.forward_noise``: the scale of the vectors' noise in the population forward."""

    bug = "the forward scales vector (bias) noise by sigma / sqrt(rank), the matrices' factor, instead of sigma"
    flagged_by = "noise.full_rank_normal"
    engine_class = _VectorsAtLoraScaleEngine


# ---- the pair engine's update -----------------------------------------------------------------


class _NoSqrtNEngine(PairEngine):
    def gradients(self, draws, params, fitnesses, sigma):
        # The gradient is linear in the fitnesses: this drops the sqrt(N) of -sqrt(N) / N.
        return super().gradients(draws, params, fitnesses / math.sqrt(fitnesses.shape[0]), sigma)


class MissingSqrtN(TrainerMutant):
    """Seam: ``PairEngine.gradients``: the pair weights ``(f_2p - f_2p+1) * sqrt(N) / N``."""

    bug = "the pair engine's update is not multiplied by sqrt(N): pair weights (f_2p - f_2p+1) / N"
    flagged_by = "update.observed_noise"
    engine_class = _NoSqrtNEngine


class _VectorsOverSigmaEngine(PairEngine):
    def gradients(self, draws, params, fitnesses, sigma):
        grads = super().gradients(draws, params, fitnesses, sigma)
        for path in draws.vectors.keys() & grads.keys():
            grads[path] = grads[path] / sigma
        return grads


class BiasUpdateOverSigma(TrainerMutant):
    """Seam: ``PairEngine.gradients``, its vector branch ``(w * sigma) @ z``."""

    bug = "the vector (bias) update weighs the unit normals z instead of sigma * z (the step divided by sigma)"
    flagged_by = "update.observed_vector"
    engine_class = _VectorsOverSigmaEngine


class _ReversedPairsEngine(PairEngine):
    def gradients(self, draws, params, fitnesses, sigma):
        return super().gradients(draws, params, -fitnesses, sigma)


class DescentOnFitness(TrainerMutant):
    """Seam: ``PairEngine.gradients``: the antithetic difference of each pair. Every update check
    fails too; the training run shows what it does to users."""

    bug = "the pair engine takes f_2p+1 - f_2p, so every step descends on fitness"
    flagged_by = "trajectory.equivalence"
    engine_class = _ReversedPairsEngine


# ---- keys --------------------------------------------------------------------------------------


class _PathHashKeysTrainer(EggrollTrainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._keys = {path: es_random.fold_in(self.es_key, hash(path) % 2**32) for path in self._keys}
        if self._engine is not None:
            self._engine.set_keys(self._keys)


class KeysFromPathHash(TrainerMutant):
    """Seam: ``EggrollTrainer.__init__``'s per-parameter keys (``assign_keys``)."""

    bug = "each parameter's key is fold_in(es_key, hash(path)), which Python randomizes per process"
    flagged_by = "noise.seed_determinism"
    trainer_class = _PathHashKeysTrainer


# ---- fitness shaping ---------------------------------------------------------------------------


class _ShapingTrainer(EggrollTrainer):
    """``EggrollTrainer`` whose pair-engine update weighs the noise by :meth:`shape` of the raw
    fitnesses, where ``update`` calls ``standardize_unchecked``; subclasses override it."""

    def shape(self, scores: torch.Tensor, group_size: int) -> torch.Tensor:
        return standardize_unchecked(scores, group_size)

    def update(self, raw_fitness):
        # _paired_update is handed the shaped scores only, so the raw ones are kept for the call.
        self._raw = raw_fitness
        try:
            return super().update(raw_fitness)
        finally:
            del self._raw

    def _paired_update(self, draws, params, fitnesses):
        return super()._paired_update(draws, params, self.shape(self._raw, self._frozen["group_size"]))


def _centred(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """Scores minus the population's mean (``group_size`` 0) or their group's, as upstream centres them."""
    if group_size == 0:
        return scores - scores.mean()
    groups = scores.reshape(-1, group_size)
    return (groups - groups.mean(-1, keepdim=True)).reshape(-1)


class _DdofOneTrainer(_ShapingTrainer):
    def shape(self, scores, group_size):
        return _centred(scores, group_size) / torch.sqrt(scores.var(correction=1) + VARIANCE_EPS)


class DdofOne(TrainerMutant):
    """Seam: the trainer's fitness shaping (``standardize_unchecked``)."""

    bug = "fitness shaping divides by the sample standard deviation (torch's default ddof=1)"
    flagged_by = "normalization.observed_group"
    trainer_class = _DdofOneTrainer


class _PerGroupStdTrainer(_ShapingTrainer):
    def shape(self, scores, group_size):
        if group_size == 0:
            return super().shape(scores, group_size)
        groups = scores.reshape(-1, group_size)
        spread = torch.sqrt(groups.var(-1, correction=0, keepdim=True) + VARIANCE_EPS)
        return ((groups - groups.mean(-1, keepdim=True)) / spread).reshape(-1)


class PerGroupStd(TrainerMutant):
    """Seam: the trainer's fitness shaping (``standardize_unchecked``), its ``group_size > 0`` branch."""

    bug = "group shaping divides each group by its own std instead of the population's"
    flagged_by = "normalization.observed_group"
    trainer_class = _PerGroupStdTrainer


class _EpsOutsideSqrtTrainer(_ShapingTrainer):
    def shape(self, scores, group_size):
        return _centred(scores, group_size) / (scores.std(correction=0) + VARIANCE_EPS)


class EpsOutsideSqrt(TrainerMutant):
    """Seam: the trainer's fitness shaping (``standardize_unchecked``)."""

    bug = "fitness shaping divides by std + 1e-5 instead of sqrt(var + 1e-5)"
    flagged_by = "update.observed_noise"
    trainer_class = _EpsOutsideSqrtTrainer


# ---- the solver --------------------------------------------------------------------------------


def _scale_by_adam_uncorrected(b1: float, b2: float, eps: float) -> GradientTransformation:
    """``scale_by_adam``'s moments and state, its step ``mu / (sqrt(nu) + eps)`` without the bias
    correction ``1 - b**t`` of either moment."""
    inner = scale_by_adam(b1=b1, b2=b2, eps=eps)

    def update_fn(updates, state, params=None):
        _, state = inner.update(updates, state, params)
        return tree.map(lambda mu, nu: mu / (torch.sqrt(nu) + eps), state.mu, state.nu), state

    return GradientTransformation(inner.init, update_fn)


def _adam_uncorrected(learning_rate, b1=0.9, b2=0.999, eps=1e-8):
    return chain(_scale_by_adam_uncorrected(b1, b2, eps), scale_by_learning_rate(learning_rate))


def _adamw_uncorrected(learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4):
    return chain(_scale_by_adam_uncorrected(b1, b2, eps), add_decayed_weights(weight_decay),
                 scale_by_learning_rate(learning_rate))


class _UncorrectedAdamTrainer(EggrollTrainer):
    def __init__(self, module, sigma, lr, *, solver="sgd", **kwargs):
        if isinstance(solver, str):
            solver = {"adam": _adam_uncorrected, "adamw": _adamw_uncorrected}.get(solver, solver)
        super().__init__(module, sigma, lr, solver=solver, **kwargs)


class AdamWithoutBiasCorrection(TrainerMutant):
    """Seam: the solver the trainer resolves ``"adam"`` / ``"adamw"`` to (``scale_by_adam``)."""

    bug = "adam and adamw step by mu / (sqrt(nu) + eps) without the moments' bias correction"
    flagged_by = "optimizer.observed_adam"
    trainer_class = _UncorrectedAdamTrainer


TRAINER_CATALOG: tuple[type[TrainerMutant], ...] = (
    NoInvSqrtRank, EngineAtRankOne, GroupSharesFirstKey, FreshNoiseReuseZero, ReuseModulo, FoldedBiasSameSign,
    VectorNoiseAtLoraScale, MissingSqrtN, BiasUpdateOverSigma, DescentOnFitness, KeysFromPathHash, DdofOne,
    PerGroupStd, EpsOutsideSqrt, AdamWithoutBiasCorrection,
)
