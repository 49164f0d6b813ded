"""XLA:CPU's float64 ``erf_inv`` (and ``log1p``), operation for operation, for float64 normals.

Read from jaxlib 0.10.2's optimized x86-64 kernel for ``jax.random.normal(..., float64)``. The
``log1p`` of an argument of magnitude at least ``sqrt(2) - 1`` is ``log(1 + x)`` by a call into the
host C library; it is evaluated here with Python's ``math.log``, which calls the same libm
function, so float64 results are exact on the same host C library (glibc on x86-64). Works on numpy
float64 arrays.
"""
from __future__ import annotations

import math

import numpy as np

from .exact_numpy import fma64

_LOG1P_SMALL = 0.41421356237309503
_LOG1P_P = (4.52700008624452e-05, 0.49854102823193375, 6.578732594206104, 29.911919328553072,
            60.94966798098779, 57.11296359058554, 20.039553499201283)
_LOG1P_Q = (1.0, 15.062909083469192, 83.04756596796722, 221.76239823732857, 309.09872225312057,
            216.42788614495947, 60.11866049760384)

# Giles' double-precision erf_inv: one coefficient triple per Horner step for the regions
# w < 6.25, 6.25 <= w < 16 and w >= 16. The first 17 steps run in every region.
_ERFINV_SHARED = (
    (-3.64441206401782e-21, 2.2137376921775787e-09, -2.7109920616438573e-11),
    (-1.6850591381820166e-19, 9.0756561938885391e-08, -2.5556418169965252e-10),
    (1.28584807152564e-18, -2.7517406297064545e-07, 1.5076572693500548e-09),
    (1.1157877678025181e-17, 1.8239629214389228e-08, -3.789465440126737e-09),
    (-1.3331716628546209e-16, 1.5027403968909828e-06, 7.61570120807834e-09),
    (2.0972767875968562e-17, -4.013867526981546e-06, -1.496002662714924e-08),
    (6.6376381343583238e-15, 2.9234449089955446e-06, 2.9147953450901081e-08),
    (-4.0545662729752069e-14, 1.2475304481671779e-05, -6.7711997758452339e-08),
    (-8.1519341976054722e-14, -4.7318229009055734e-05, 2.2900482228026655e-07),
    (2.6335093153082323e-12, 6.8284851459573175e-05, -9.9298272942317e-07),
    (-1.2975133253453532e-11, 2.4031110387097894e-05, 4.5260625972231537e-06),
    (-5.4154120542946279e-11, -0.00035503752036284748, -1.9681778105531671e-05),
    (1.0512122733215323e-09, 0.0009532893797373805, 7.5995277030017761e-05),
    (-4.1126339803469837e-09, -0.0016882755560235047, -0.00021503011930044477),
    (-2.9070369957882005e-08, 0.0024914420961078508, -0.00013871931833623122),
    (4.2347877827932404e-07, -0.0037512085075692412, 1.0103004648645344),
    (-1.3654692000834679e-06, 0.0053709145535900636, 4.8499064014085844),
)
# Two more steps for w < 16 (first and second region), then four for w < 6.25 only.
_ERFINV_BELOW_16 = ((-1.3882523362786469e-05, 1.0052589676941592),
                    (0.00018673420803405714, 3.0838856104922208))
_ERFINV_BELOW_6_25 = (-0.000740702534166267, -0.0060336708714301491, 0.24015818242558962,
                      1.6536545626831027)


def _host_log(y: np.ndarray) -> np.ndarray:
    return np.fromiter(map(math.log, y.tolist()), dtype=np.float64, count=y.size)


def log1p_f64(x: np.ndarray) -> np.ndarray:
    """XLA:CPU ``log-plus-one`` for float64 x > -1 (1-D)."""
    small = np.abs(x) < _LOG1P_SMALL
    out = np.empty_like(x)
    xs = x[small]
    num = np.full_like(xs, _LOG1P_P[0])
    den = np.full_like(xs, _LOG1P_Q[0])
    for p, q in zip(_LOG1P_P[1:], _LOG1P_Q[1:]):
        num = fma64(xs, num, p)
        den = fma64(xs, den, q)
    x2 = xs * xs
    out[small] = xs + fma64(x2, -0.5, (xs * x2) * (num / den))
    out[~small] = _host_log(x[~small] + 1.0)
    return out


def erf_inv_f64(u: np.ndarray) -> np.ndarray:
    """XLA:CPU ``erf_inv`` for float64 u in (-1, 1) (1-D); +-inf at +-1."""
    u = np.asarray(u, np.float64)
    w = -log1p_f64(u * -u)
    first = w < 6.25
    second = w < 16.0
    t = np.where(first, w - 3.125, np.sqrt(w) - np.where(second, 3.25, 5.0))

    def pick(triple):
        return np.where(first, triple[0], np.where(second, triple[1], triple[2]))

    p = pick(_ERFINV_SHARED[0])
    for triple in _ERFINV_SHARED[1:]:
        p = fma64(p, t, pick(triple))
    for a, b in _ERFINV_BELOW_16:
        p = np.where(second, fma64(p, t, np.where(first, a, b)), p)
    for a in _ERFINV_BELOW_6_25:
        p = np.where(first, fma64(p, t, a), p)
    p = np.where(np.abs(u) == 1.0, np.inf, p)
    return u * p
