"""The noisers, mirroring upstream's ``hyperscalees.noiser`` module for module and name for name.

``all_noisers`` maps upstream's names to the classes ("reeggroll" is EGGROLL again, as upstream).
"""
from . import alteggroll, base_noiser, eggroll, eggroll_baseline_subtraction, open_es, sparse

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
           "open_es", "sparse"]
