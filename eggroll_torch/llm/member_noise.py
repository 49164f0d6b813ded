"""Each member's noise drawn once per generation, every stacked layer in one draw.

A member's perturbation depends on its key, epoch and thread id only, yet the model's forward
draws it through the noiser at every call, and generation calls the forward once per token.
:func:`member_noise` builds a tree shaped like the params whose leaves (:class:`LeafNoise`)
are passed to the forward in place of the ES keys; :func:`drawn_noiser` subclasses the noiser
so that its noise seam (``full_noise``, ``lora_noise``, ``sparse_noise``: every forward and
estimator of an :class:`ESNoiser` draws through them) takes such a leaf: the first draw runs
the noiser's own seam once on the whole stacked parameter and key, later draws slice it. The
values are the noiser's own, bit for bit (the draws are per key, so a stacked draw is the
per-layer draws side by side).
"""
from __future__ import annotations

import torch

from eggroll_torch import tree
from eggroll_torch.noiser._es_noiser import ESNoiser
from eggroll_torch.noiser._forward import add_low_rank_product, matmul
from eggroll_torch.noiser._member import lora_sigma

__all__ = ["LeafNoise", "drawn_noiser", "member_noise"]

_SEAMS = ("full_noise", "lora_noise", "sparse_noise")


class LeafNoise:
    """Stands in for the ES key ``(*S, 2)`` of one parameter ``(*S, *shape)`` (``S`` its
    stacked-layer axes, possibly none) during one generation, and holds its members' noise.

    Indexing gives the stand-in of one layer, as indexing gives a layer's key (``noise[i]``).
    The draws assume what one generation guarantees: the same ``frozen_noiser_params``,
    ``noiser_params`` and ``iterinfo`` at every call.
    """

    __slots__ = ("param", "key", "index", "_draws")

    def __init__(self, param: torch.Tensor, key: torch.Tensor, index: tuple = (), draws: dict | None = None):
        self.param, self.key, self.index = param, key, index
        self._draws = {} if draws is None else draws

    def __getitem__(self, index) -> "LeafNoise":
        return LeafNoise(self.param, self.key, self.index + (index,), self._draws)

    def draw(self, seam: str, fn):
        """``fn(param, key)`` on the whole stacked leaf (run once per ``seam``): a tensor or a
        tuple of tensors ``(*S, *M, ...)``, as a seam returns, each indexed at this stand-in's
        layer."""
        if seam not in self._draws:
            self._draws[seam] = fn(self.param, self.key)
        drawn = self._draws[seam]
        if isinstance(drawn, tuple):
            return tuple(x[self.index] for x in drawn)
        return drawn[self.index]


def _seam(name: str, parent):
    # The parent's function, called with the subclass: what super() resolves, looked up once when
    # the class is made, so that torch.compile traces plain function calls.
    own = getattr(parent, name).__func__

    def seam(cls, frozen_noiser_params, base_sigma, iterinfo, param, key):
        if not isinstance(key, LeafNoise):
            return own(cls, frozen_noiser_params, base_sigma, iterinfo, param, key)
        return key.draw(name, lambda p, k: own(cls, frozen_noiser_params, base_sigma, iterinfo, p, k))

    seam.__name__ = seam.__qualname__ = name
    return classmethod(seam)


def _low_rank(transposed: bool, parent):
    name = "do_Tmm" if transposed else "do_mm"
    own, lora_noise = getattr(parent, name).__func__, parent.lora_noise.__func__

    def product(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        population = isinstance(iterinfo, (tuple, list)) and torch.is_tensor(iterinfo[1]) and iterinfo[1].ndim == 1
        if not isinstance(base_key, LeafNoise) or not population:
            return own(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x)
        # _forward.low_rank_mm's arithmetic without its per-call checks and scalar work (a few
        # small kernels per matrix per token): the factors and their scale are drawn once.
        A, B = base_key.draw("lora_noise", lambda p, k: lora_noise(
            cls, frozen_noiser_params,
            lora_sigma(noiser_params["sigma"], frozen_noiser_params["rank"], p.dtype, p.device), iterinfo, p, k))
        first, second = (A, B) if transposed else (B, A)
        base = matmul(x, param if transposed else param.T)
        return add_low_rank_product(base, x, first, second.transpose(-1, -2))

    product.__name__ = product.__qualname__ = name
    return classmethod(product)


# One subclass per noiser class: torch.compile guards on the noiser's identity, so a fresh class
# per generate function would recompile the whole forward for every one.
_DRAWN: dict = {}


def drawn_noiser(NOISER):
    """A subclass of ``NOISER`` whose noise seam accepts :class:`LeafNoise` stand-ins for keys
    (with real keys it is ``NOISER`` exactly), made once per ``NOISER`` and returned again after
    (a class it made is returned as it is). Noisers that are not an :class:`ESNoiser` draw no
    noise and are returned as they are.

    Where ``NOISER`` keeps ESNoiser's low-rank ``do_mm``/``do_Tmm`` (the EGGROLL family), those
    run the same product on the stand-in's factors, skipping the checks and scalars a call with
    a key recomputes every time.
    """
    if not issubclass(NOISER, ESNoiser) or getattr(NOISER, "_drawn_class", None) is NOISER:
        return NOISER
    if NOISER in _DRAWN:
        return _DRAWN[NOISER]
    namespace = {name: _seam(name, NOISER) for name in _SEAMS if hasattr(NOISER, name)}
    if NOISER.do_mm.__func__ is ESNoiser.do_mm.__func__ and NOISER.do_Tmm.__func__ is ESNoiser.do_Tmm.__func__:
        namespace |= {"do_mm": _low_rank(False, NOISER), "do_Tmm": _low_rank(True, NOISER)}
    drawn = type(f"Drawn{NOISER.__name__}", (NOISER,), namespace)
    drawn._drawn_class = drawn
    _DRAWN[NOISER] = drawn
    return drawn


def member_noise(noiser, params, keys):
    """What to pass ``noiser``'s forward in place of ``keys`` for one generation: a tree of
    :class:`LeafNoise` shaped like ``params`` (whose leaves pair with those of ``keys``) when
    ``noiser`` comes from :func:`drawn_noiser`, else ``keys`` themselves."""
    if getattr(noiser, "_drawn_class", None) is not noiser:
        return keys
    return tree.map(LeafNoise, params, keys)
