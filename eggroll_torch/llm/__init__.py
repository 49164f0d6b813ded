"""EGGROLL fine-tuning of a language model (``jax_reference.llm``'s mirror), and its command line.

``python -m eggroll_torch.llm train --model <size, spec or .pth> --task fastzero ...`` runs it
(see :mod:`.train`); :class:`Evolution` is the library form. Names are imported on first access,
so that ``jax_reference.llm`` can share :mod:`.config` (framework-free) without importing torch.
"""
import importlib

_EXPORTS = {
    "EpochResult": "evolution", "Evolution": "evolution", "master_keys": "evolution",
    "EvolutionConfig": "config",
    "build_generate_batch": "utils", "build_validate": "utils", "fold_in_helper": "utils", "safe_decode": "utils",
    "sample_token": "utils",
}
_MODULES = ("config", "evolution", "train", "utils")

__all__ = sorted(_EXPORTS) + list(_MODULES)


def __getattr__(name):
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
