"""Statistics for ports whose noise cannot be compared value for value (numpy only, no scipy).

The statistical checks (:mod:`conformance.trainer_checks`) judge a port's own draws against the
distribution upstream's draws have. Each function returns a p-value or an interval, so a check
can state its false-alarm rate and the smallest deviation it detects:

- :func:`ks_normal`: Kolmogorov-Smirnov distance to ``N(mean, sd**2)`` and its asymptotic p-value;
- :func:`t_sf`: Student's t survival function (regularized incomplete beta);
- :func:`mean_test`: two-sided one-sample t-test of a mean;
- :func:`tost`: two one-sided t-tests of equivalence of a mean difference within a margin.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """The standard normal CDF, elementwise (float64).

    Args:
        x (np.ndarray): any shape.

    Returns:
        np.ndarray: ``Phi(x)``, same shape.
    """
    return 0.5 * (1.0 + np.vectorize(math.erf)(np.asarray(x, np.float64) / math.sqrt(2.0)))


def kolmogorov_sf(lam: float) -> float:
    """``P(sqrt(n) D > lam)`` for large ``n``: the Kolmogorov distribution's survival function.

    Args:
        lam (float): the scaled statistic, >= 0.

    Returns:
        float: the asymptotic p-value in [0, 1].
    """
    if lam < 0.2:
        return 1.0
    total = sum((-1) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam) for k in range(1, 101))
    return min(1.0, max(0.0, 2.0 * total))


def ks_normal(samples: np.ndarray, mean: float, sd: float) -> tuple[float, float]:
    """One-sample Kolmogorov-Smirnov test of ``samples`` against ``N(mean, sd**2)``.

    Args:
        samples (np.ndarray): independent draws, any shape (flattened), at least 8.
        mean (float): the hypothesised mean.
        sd (float): the hypothesised standard deviation, > 0.

    Returns:
        tuple[float, float]: ``(D, p)``: the largest CDF distance and its p-value (Stephens'
        finite-sample correction of the asymptotic distribution).

    Raises:
        ValueError: fewer than 8 samples or ``sd <= 0``.
    """
    x = np.sort(np.asarray(samples, np.float64).ravel())
    n = x.size
    if n < 8 or not sd > 0:
        raise ValueError(f"ks_normal needs >= 8 samples and sd > 0, got {n} samples and sd={sd}")
    cdf = normal_cdf((x - mean) / sd)
    d = float(max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n)))
    root = math.sqrt(n)
    return d, kolmogorov_sf((root + 0.12 + 0.11 / root) * d)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        for numerator in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                          -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function ``I_x(a, b)``.

    Args:
        a (float): > 0. b (float): > 0. x (float): in [0, 1].

    Returns:
        float: ``I_x(a, b)`` in [0, 1].
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """``P(T > t)`` for Student's t with ``df`` degrees of freedom.

    Args:
        t (float): any real. df (float): > 0.

    Returns:
        float: the upper tail probability.
    """
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (bisection on :func:`t_sf`).

    Args:
        p (float): in (0, 1). df (float): > 0.

    Returns:
        float: ``t`` with ``P(T <= t) = p``.
    """
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if 1.0 - t_sf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def mean_test(values: np.ndarray, mu0: float) -> tuple[float, float]:
    """Two-sided one-sample t-test of ``mean(values) == mu0``.

    Args:
        values (np.ndarray): independent observations, at least 3.
        mu0 (float): the hypothesised mean.

    Returns:
        tuple[float, float]: ``(t, p)``; ``p`` is 0 when the values do not vary but differ from
        ``mu0``, 1 when they all equal it.
    """
    v = np.asarray(values, np.float64).ravel()
    se = v.std(ddof=1) / math.sqrt(v.size)
    diff = v.mean() - mu0
    if se == 0:
        return (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
    t = diff / se
    return float(t), float(2.0 * t_sf(abs(t), v.size - 1))


@dataclass(frozen=True)
class Equivalence:
    """A TOST verdict: ``equivalent`` when both one-sided tests reject at ``alpha``, i.e. the
    ``1 - 2 alpha`` interval of the mean difference lies inside ``(-margin, margin)``."""

    mean: float
    sd: float
    n: int
    margin: float
    alpha: float
    p_lower: float
    p_upper: float
    interval: tuple

    @property
    def p(self) -> float:
        return max(self.p_lower, self.p_upper)

    @property
    def equivalent(self) -> bool:
        return self.p < self.alpha


def tost(differences: np.ndarray, margin: float, alpha: float = 0.05) -> Equivalence:
    """Paired two one-sided tests: is the mean of ``differences`` within ``(-margin, margin)``?

    Args:
        differences (np.ndarray): per-pair differences (port minus reference), at least 3.
        margin (float): the equivalence margin, > 0.
        alpha (float): level of each one-sided test. Default 0.05 (a 90% interval).

    Returns:
        Equivalence: the means, both p-values and the ``1 - 2 alpha`` interval.

    Raises:
        ValueError: fewer than 3 differences or a margin <= 0.
    """
    d = np.asarray(differences, np.float64).ravel()
    if d.size < 3 or not margin > 0:
        raise ValueError(f"tost needs >= 3 differences and margin > 0, got {d.size} and {margin}")
    n, mean, sd = d.size, float(d.mean()), float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    if se == 0:
        inside = abs(mean) < margin
        p = 0.0 if inside else 1.0
        return Equivalence(mean, sd, n, margin, alpha, p, p, (mean, mean))
    df = n - 1
    p_lower = t_sf((mean + margin) / se, df)
    p_upper = 1.0 - t_sf((mean - margin) / se, df)
    half = t_quantile(1.0 - alpha, df) * se
    return Equivalence(mean, sd, n, margin, alpha, float(p_lower), float(p_upper), (mean - half, mean + half))
