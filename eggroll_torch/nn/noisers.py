"""The ``noiser=`` argument, and which noisers the population forward can run vectorized.

A noiser is vectorized when its matrix forward is upstream's low-rank ``do_mm``
(``x @ W.T + x @ B @ A.T`` with ``A, B`` from the noiser's ``lora_noise`` at
``sigma / sqrt(rank)``): EGGROLL (``"eggroll"``, ``"reeggroll"``), alternating EGGROLL and
EGGROLL with baseline subtraction. Any other class, user subclasses included (they may override
``do_mm``), runs member by member through its own ``do_mm``.
"""
from __future__ import annotations

from eggroll_torch.noiser import all_noisers, alteggroll, eggroll, eggroll_baseline_subtraction
from eggroll_torch.noiser._member import lora_sigma
from eggroll_torch.noiser.base_noiser import Noiser

_LOW_RANK = frozenset({eggroll.EggRoll, alteggroll.EggRoll, eggroll_baseline_subtraction.EggRollBS})


def resolve_noiser(noiser) -> type[Noiser]:
    """A name from ``eggroll_torch.noiser.all_noisers`` or a ``Noiser`` subclass -> the class."""
    if isinstance(noiser, str):
        if noiser not in all_noisers:
            raise ValueError(
                f"noiser: unknown name {noiser!r}; use one of {sorted(all_noisers)} or pass a Noiser subclass"
            )
        return all_noisers[noiser]
    if isinstance(noiser, type) and issubclass(noiser, Noiser):
        return noiser
    raise TypeError(
        f"noiser must be a name in {sorted(all_noisers)} or a subclass of "
        f"eggroll_torch.noiser.base_noiser.Noiser, got {noiser!r}"
    )


def low_rank_factors(noiser: type[Noiser], frozen_noiser_params, noiser_params, param, key, iterinfo):
    """``(A (N, out, r), B (N, in, r))`` of every member for the matrix ``param``, exactly as the
    noiser's ``do_mm`` draws them, or ``None`` when ``noiser`` is not vectorized."""
    if noiser not in _LOW_RANK:
        return None
    base_sigma = lora_sigma(noiser_params["sigma"], frozen_noiser_params["rank"], param.dtype, param.device)
    return noiser.lora_noise(frozen_noiser_params, base_sigma, iterinfo, param, key)
