"""Noisers: how a population perturbs parameters and turns fitnesses into an update.

``all_noisers`` maps the names upstream's scripts accept to classes; "reeggroll" is another
name for EGGROLL.
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
