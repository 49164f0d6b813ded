"""The noisers, mirroring upstream's ``hyperscalees.noiser`` module for module and name for name.

``all_noisers`` maps upstream's names to the classes ("reeggroll" is EGGROLL again, as upstream).
``lora_sigma(sigma, rank, dtype, device)`` is the ``sigma / sqrt(rank)`` to hand a module's
``get_lora_update_params`` to get exactly the factors its ``do_mm`` uses.
"""
from . import alteggroll, base_noiser, eggroll, eggroll_baseline_subtraction, open_es, sparse
from ._member import lora_sigma

all_noisers = {
    "noop": base_noiser.Noiser,
    "open_es": open_es.OpenES,
    "eggroll": eggroll.EggRoll,
    "eggrollbs": eggroll_baseline_subtraction.EggRollBS,
    "alteggroll": alteggroll.EggRoll,
    "reeggroll": eggroll.EggRoll,
    "sparse": sparse.Sparse,
}


def get_noiser(name: str) -> type[base_noiser.Noiser]:
    """The class ``all_noisers[name]``, with a ValueError listing the names for an unknown one."""
    if name not in all_noisers:
        raise ValueError(f"noiser: unknown name {name!r}; use one of {sorted(all_noisers)}")
    return all_noisers[name]


__all__ = ["all_noisers", "alteggroll", "base_noiser", "eggroll", "eggroll_baseline_subtraction", "get_noiser",
           "lora_sigma", "open_es", "sparse"]
