"""A small trainer-only EGGROLL port written for the tests, correct by upstream's definitions,
and variants of it with one bug each, as seen in public ports. The trainer checks must pass the
correct one and flag each variant by the check that names its bug (:data:`CAUGHT_BY`).

The port draws its own noise with numpy (never JAX's PRNG), materializes each member's
parameters and runs the members one at a time, as several public ports do.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.func import functional_call

from conformance.adapters.base import BackendInfo
from conformance.adapters.trainer import TrainerAdapter


class MiniPort(TrainerAdapter):
    """Upstream's EGGROLL by its definitions: pairs share noise with opposite signs, matrices get
    ``(sigma / sqrt(r)) A @ B.T``, vectors ``sigma z``, z-scored fitnesses with eps inside the
    sqrt, the update ``lr * sqrt(N) * mean(f * E)`` through sgd / optax's adam(w)."""

    name = "mini-port"

    def info(self):
        return BackendInfo(self.name, "0.0.1", "cpu", {}, "numpy default_rng per (seed, true_epoch, pair, parameter)")

    def build(self, module, config):
        return {"module": module, "config": config, "epoch": 0, "mu": {}, "nu": {}}

    def true_epoch(self, epoch, reuse):
        return 0 if reuse == 0 else epoch // reuse

    def rng(self, config, true_epoch, pair, index, name):
        return np.random.default_rng([config.seed, true_epoch, pair, index])

    def noise(self, rng, shape, config):
        if len(shape) == 2:
            a = rng.standard_normal((shape[0], config.rank))
            b = rng.standard_normal((shape[1], config.rank))
            return config.sigma / np.sqrt(config.rank) * a @ b.T
        return config.sigma * rng.standard_normal(shape)

    def sign(self, member):
        return 1.0 if member % 2 == 0 else -1.0

    def shape_fitness(self, raw, group_size):
        spread = np.sqrt(raw.var() + 1e-5)
        if group_size == 0:
            return (raw - raw.mean()) / spread
        groups = raw.reshape(-1, group_size)
        return ((groups - groups.mean(axis=1, keepdims=True)) / spread).ravel()

    def estimate(self, shaped, noises, n):
        return np.sqrt(n) * sum(f * e for f, e in zip(shaped, noises)) / n

    def solver_step(self, state, name, estimate, value, t):
        config = state["config"]
        if config.solver == "sgd":
            return config.lr * estimate
        options = config.solver_options
        b1, b2, eps = options.get("b1", 0.9), options.get("b2", 0.999), options.get("eps", 1e-8)
        g = -estimate
        state["mu"][name] = b1 * state["mu"].get(name, 0.0) + (1 - b1) * g
        state["nu"][name] = b2 * state["nu"].get(name, 0.0) + (1 - b2) * g * g
        mu_hat, nu_hat = state["mu"][name] / (1 - b1 ** t), state["nu"][name] / (1 - b2 ** t)
        decay = options.get("weight_decay", 1e-4) * value if config.solver == "adamw" else 0.0
        return -config.lr * (mu_hat / (np.sqrt(nu_hat) + eps) + decay)

    def step(self, state, inputs, fitness):
        module, config = state["module"], state["config"]
        n = config.population
        params = {name: p.detach().double().numpy() for name, p in module.named_parameters()}
        true_epoch = self.true_epoch(state["epoch"], config.noise_reuse)
        noise = [{name: self.noise(self.rng(config, true_epoch, pair, index, name), value.shape, config)
                  for index, (name, value) in enumerate(params.items())} for pair in range(n // 2)]
        raw = []
        for member in range(n):
            perturbed = {name: torch.from_numpy((value + self.sign(member) * noise[member // 2][name])
                                                .astype(np.float32)) for name, value in params.items()}
            with torch.no_grad():
                raw.append(float(fitness(functional_call(module, perturbed, (inputs[member],))[None])[0]))
        shaped = self.shape_fitness(np.array(raw, np.float64), config.group_size)
        state["epoch"] += 1
        with torch.no_grad():
            for name, p in module.named_parameters():
                noises = [self.sign(m) * noise[m // 2][name] for m in range(n)]
                step = self.solver_step(state, name, self.estimate(shaped, noises, n), params[name], state["epoch"])
                p.copy_(torch.from_numpy((params[name] + step).astype(np.float32)))


class NoAntithetic(MiniPort):
    def sign(self, member):
        return 1.0


class NoRankScaling(MiniPort):
    def noise(self, rng, shape, config):
        scaled = super().noise(rng, shape, config)
        return scaled * np.sqrt(config.rank) if len(shape) == 2 else scaled


class FullRankMatrices(MiniPort):
    def noise(self, rng, shape, config):
        return config.sigma * rng.standard_normal(shape)


class BiasOverSqrtSize(MiniPort):
    def noise(self, rng, shape, config):
        drawn = super().noise(rng, shape, config)
        return drawn if len(shape) == 2 else drawn / np.sqrt(np.prod(shape))


class FreshNoiseUnderReuseZero(MiniPort):
    def true_epoch(self, epoch, reuse):
        return epoch if reuse == 0 else epoch // reuse


class LayersShareSeed(MiniPort):
    def rng(self, config, true_epoch, pair, index, name):
        return np.random.default_rng([config.seed, true_epoch, pair])


class SeedFromStringHash(MiniPort):
    def rng(self, config, true_epoch, pair, index, name):
        return np.random.default_rng(abs(hash((name, config.seed, true_epoch, pair))))


class EpsOutsideSqrt(MiniPort):
    def shape_fitness(self, raw, group_size):
        return (raw - raw.mean()) / (raw.std() + 1e-5) if group_size == 0 else super().shape_fitness(raw, group_size)


class PerGroupStd(MiniPort):
    def shape_fitness(self, raw, group_size):
        if group_size == 0:
            return super().shape_fitness(raw, group_size)
        groups = raw.reshape(-1, group_size)
        spread = np.sqrt(groups.var(axis=1, keepdims=True) + 1e-5)
        return ((groups - groups.mean(axis=1, keepdims=True)) / spread).ravel()


class NoSqrtN(MiniPort):
    def estimate(self, shaped, noises, n):
        return super().estimate(shaped, noises, n) / np.sqrt(n)


class NoBiasCorrection(MiniPort):
    def solver_step(self, state, name, estimate, value, t):
        return super().solver_step(state, name, estimate, value, 1)


class VectorUpdateSummed(MiniPort):
    def estimate(self, shaped, noises, n):
        summed = super().estimate(shaped, noises, n)
        return summed * n if np.ndim(noises[0]) == 1 else summed


# variant -> the trainer check that names its bug
CAUGHT_BY = {
    NoAntithetic: "signs.antithetic_exact",
    NoRankScaling: "noise.lowrank_scale",
    FullRankMatrices: "noise.member_rank",
    BiasOverSqrtSize: "noise.full_rank_normal",
    FreshNoiseUnderReuseZero: "noise.reuse_epochs",
    LayersShareSeed: "noise.independence",
    SeedFromStringHash: "noise.seed_determinism",
    EpsOutsideSqrt: "update.observed_noise",
    PerGroupStd: "normalization.observed_group",
    NoSqrtN: "update.observed_noise",
    VectorUpdateSummed: "update.observed_vector",
    NoBiasCorrection: "optimizer.observed_adam",
}
