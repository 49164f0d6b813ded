"""Noise, observed through the trainer: rank, scale and distribution, independence, reuse.

Upstream's member ``n`` perturbs a matrix by ``+-(sigma / sqrt(r)) * A @ B.T`` with standard
normal ``A (out, r)``, ``B (in, r)``: rank exactly ``r``, entries of mean 0 and variance
``sigma**2`` whatever ``r`` is; a vector by ``+-sigma * z``, ``z`` standard normal. Draws of
different pairs, parameters and ``true_epoch``s are independent; ``true_epoch = 0`` when
``noise_reuse == 0``, else ``epoch // noise_reuse``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np

from .. import stats
from ..adapters.base import Unsupported
from ._common import correlation, noise_case, pairs
from .base import TrainerCheck, register
from .probes import EXACT, EXACT_MATRICES, WIDTH, noise_digest

# False-alarm rate of each statistical test below.
ALPHA = 1e-4
# n * mean(corr**2) of independent noise is about 1; this bound is about six standard errors
# above it at the probe's sizes, and is exceeded by any mean correlation of about 0.11 or more.
INDEPENDENCE_BOUND = 3.0


@register
class MemberRank(TrainerCheck):
    id = "noise.member_rank"
    component = "Noise"
    summary = "each member's matrix perturbation has rank exactly r"
    power = "exact: singular values of every member's observed perturbation (64 members, two 16x16 matrices)"

    def cases(self):
        return [noise_case("rank1", rank=1), noise_case("rank4", rank=4)]

    def judge(self, observer, case):
        run = observer.run(case.config, 1)
        r = case.config.rank
        out = []
        for n, member in enumerate(run.perturbations[0]):
            for name in EXACT_MATRICES:
                s = np.linalg.svd(member[name], compute_uv=False)
                numerical = int(np.sum(s > s[0] * 1e-5)) if s[0] > 0 else 0
                if numerical != r:
                    out.append(f"member {n} {name}: rank {numerical}, expected {r} (singular values "
                               f"{np.array2string(s[:r + 2], precision=3)})")
        return out, 0.0


@register
class LowRankScale(TrainerCheck):
    id = "noise.lowrank_scale"
    component = "Noise"
    mode = "statistical"
    summary = ("matrix perturbation entries have mean 0 and variance sigma**2 at every rank (factors scaled by "
               "sigma/sqrt(r))")
    power = (f"two-sided t-tests at alpha={ALPHA} over 64 independent matrices (32 pairs x 2 layers) per rank: "
             "a variance off by 25% or more (a missing or doubled 1/sqrt(r) is off by r) is detected")

    def cases(self):
        return [noise_case("rank1", rank=1), noise_case("rank4", rank=4)]

    def judge(self, observer, case):
        run = observer.run(case.config, 1)
        sigma = case.config.sigma
        matrices = [m for name in EXACT_MATRICES for m in pairs(run.perturbations[0], name)]
        second = np.array([np.mean(m * m) / sigma**2 for m in matrices])
        first = np.array([np.mean(m) / sigma for m in matrices])
        out = []
        _, p = stats.mean_test(second, 1.0)
        if p < ALPHA:
            out.append(f"entry variance / sigma**2 = {second.mean():.3f} (p={p:.2g}), expected 1")
        _, p = stats.mean_test(first, 0.0)
        if p < ALPHA:
            out.append(f"entry mean / sigma = {first.mean():.3g} (p={p:.2g}), expected 0")
        return out, abs(second.mean() - 1.0)


@register
class FullRankNormal(TrainerCheck):
    id = "noise.full_rank_normal"
    component = "Noise"
    mode = "statistical"
    summary = "vector (bias) perturbation entries are N(0, sigma**2)"
    power = (f"Kolmogorov-Smirnov at alpha={ALPHA} over 1024 entries (32 pairs x 16 x 2 generations): a standard "
             "deviation off by 15% or more, or any shift of 0.15 sigma, is detected")

    def cases(self):
        return [noise_case()]

    def judge(self, observer, case):
        run = observer.run(case.config, 2)
        sigma = case.config.sigma
        entries = np.concatenate([np.ravel(v) for generation in run.perturbations
                                  for v in pairs(generation, "c.bias")])
        d, p = stats.ks_normal(entries, 0.0, sigma)
        out = [] if p >= ALPHA else [
            f"entries are not N(0, sigma**2): KS distance {d:.3f} (p={p:.2g}); their std is "
            f"{entries.std() / sigma:.3f} sigma, their mean {entries.mean() / sigma:.3f} sigma"]
        return out, d


@register
class Independence(TrainerCheck):
    id = "noise.independence"
    component = "Noise"
    mode = "statistical"
    summary = "noise of different pairs, layers and epochs is uncorrelated"
    power = (f"n * mean(corr**2) <= {INDEPENDENCE_BOUND} (about 1 for independent noise, n = {WIDTH * WIDTH} "
             "entries): over the 496 pairs of pairs, the 32 pairs' two layers and two consecutive epochs "
             "(noise_reuse=1); a mean correlation of 0.11 or more is detected")

    def cases(self):
        return [noise_case()]

    def judge(self, observer, case):
        run = observer.run(case.config, 2)
        first, second = run.perturbations
        a0, b0, a1 = pairs(first, "a.weight"), pairs(first, "b.weight"), pairs(second, "a.weight")
        n = a0[0].size
        groups = {
            "pairs": [correlation(a0[i], a0[j]) for i in range(len(a0)) for j in range(i + 1, len(a0))],
            "layers": [correlation(x, y) for x, y in zip(a0, b0)],
            "epochs": [correlation(x, y) for x, y in zip(a0, a1)],
        }
        out, worst = [], 0.0
        for what, values in groups.items():
            statistic = n * float(np.mean(np.square(values)))
            worst = max(worst, statistic)
            if statistic > INDEPENDENCE_BOUND:
                out.append(f"{what}: n * mean(corr**2) = {statistic:.3g} > {INDEPENDENCE_BOUND} "
                           f"(largest |corr| {np.max(np.abs(values)):.3f})")
        return out, worst


@register
class ReuseEpochs(TrainerCheck):
    id = "noise.reuse_epochs"
    component = "Noise"
    summary = "noise_reuse=0 keeps one noise for the whole run; noise_reuse=k redraws it every k epochs"
    power = "exact: every member's perturbations compared bit for bit across three generations"

    def cases(self):
        return [noise_case("reuse0", noise_reuse=0), noise_case("reuse2", noise_reuse=2)]

    def judge(self, observer, case):
        run = observer.run(case.config, 3)
        k = case.config.noise_reuse
        blocks = [0 if k == 0 else epoch // k for epoch in range(3)]
        out = []
        for epoch in (1, 2):
            same = all(np.array_equal(m0[name], m1[name]) for m0, m1 in zip(run.perturbations[0],
                                                                                run.perturbations[epoch])
                       for name in EXACT)
            if same != (blocks[epoch] == blocks[0]):
                out.append(f"epoch {epoch} reuses epoch 0's noise: {same}; upstream: {blocks[epoch] == blocks[0]} "
                           f"(true_epoch {blocks[epoch]} vs {blocks[0]})")
        return out, 0.0


# Run in a fresh interpreter: the adapter's class by module and name, the config as JSON.
_DIGEST_SCRIPT = """
import json, sys
sys.path[:0] = json.loads(sys.argv[1])
import importlib
from conformance.adapters.trainer import TrainerConfig
from conformance.trainer_checks.probes import noise_digest
owner = importlib.import_module(sys.argv[2])
for part in sys.argv[3].split("."):
    owner = getattr(owner, part)
config = json.loads(sys.argv[4])
config["solver_kwargs"] = tuple(tuple(p) for p in config["solver_kwargs"])
print(noise_digest(owner(), TrainerConfig(**config)))
"""


def digest_in_fresh_process(adapter, config, hash_seed: str) -> str:
    """:func:`~.probes.noise_digest` computed by a new interpreter with ``PYTHONHASHSEED=hash_seed``.

    Raises:
        Unsupported: the adapter's class cannot be imported by name (e.g. loaded from a file).
    """
    cls = type(adapter)
    if cls.__module__.startswith("_conformance_plugin_") or "<locals>" in cls.__qualname__:
        raise Unsupported(f"{cls.__qualname__} is not importable by name in a new process; give --backend as "
                          "package.module:Class to check determinism across processes")
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run([sys.executable, "-c", _DIGEST_SCRIPT, json.dumps([p for p in sys.path if p]),
                           cls.__module__, cls.__qualname__, json.dumps(dataclasses.asdict(config))],
                          capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"the fresh process failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout.strip().splitlines()[-1]


@register
class SeedDeterminism(TrainerCheck):
    id = "noise.seed_determinism"
    component = "Noise"
    summary = "the same seed gives the same noise (in a new trainer and in a new process); another seed other noise"
    power = "exact: digests of every member's perturbations from two builds, another seed, and two fresh " \
            "interpreters with different PYTHONHASHSEED (upstream derives everything from the key)"

    def cases(self):
        return [noise_case()]

    def judge(self, observer, case):
        adapter, config = observer.adapter, case.config
        first, again = noise_digest(adapter, config), noise_digest(adapter, config)
        out = []
        if first != again:
            out.append("two trainers built with the same seed draw different noise in one process")
        if noise_digest(adapter, replace(config, seed=config.seed + 1)) == first:
            out.append("seed and seed + 1 draw the same noise")
        processes = {seed: digest_in_fresh_process(adapter, config, seed) for seed in ("1", "2")}
        if len(set(processes.values())) != 1:
            out.append("the same seed draws different noise in two new processes (PYTHONHASHSEED 1 and 2): the "
                       "noise depends on Python's per-process hash randomization")
        elif first not in processes.values() and first == again:
            out.append("the noise of a new process differs from this one's for the same seed")
        return out, 0.0
