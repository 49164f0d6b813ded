"""EGGROLL fine-tuning of a language model (``jax_reference.llm``'s mirror), and its command line.

``python -m eggroll_torch.llm train --model <size, spec or .pth> --task fastzero ...`` runs it
(see :mod:`.train`); :class:`Evolution` is the library form.
"""
from . import evolution, utils
from .evolution import EpochResult, Evolution, EvolutionConfig, master_keys
from .utils import build_generate_batch, build_validate, fold_in_helper, safe_decode, sample_token

__all__ = [
    "EpochResult",
    "Evolution",
    "EvolutionConfig",
    "build_generate_batch",
    "build_validate",
    "evolution",
    "fold_in_helper",
    "master_keys",
    "safe_decode",
    "sample_token",
    "utils",
]
