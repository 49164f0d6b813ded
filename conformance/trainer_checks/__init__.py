"""Checks of a port that only exposes a trainer (:class:`conformance.adapters.trainer.TrainerAdapter`).

Importing this package registers every trainer check in :data:`TRAINER_REGISTRY`; see
:mod:`.base` for what they are and :mod:`.probes` for how a member's perturbation is observed.
"""
# Imported for their side effect (noqa: F401): each module registers its checks.
from . import noise, normalization, optimizer, signs, trajectory, update  # noqa: F401
from .base import TRAINER_REGISTRY, TrainerCase, TrainerCheck, register, run_trainer_check
from .probes import Observer

__all__ = ["TRAINER_REGISTRY", "Observer", "TrainerCase", "TrainerCheck", "register", "run_trainer_check"]
