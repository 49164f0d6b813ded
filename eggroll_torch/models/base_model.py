"""The model protocol: ``rand_init`` builds params, ``forward`` runs them with a noiser.

Params are nested dicts of tensors. ``scan_map`` has the params' structure with a tuple of
stacked-layer axes per leaf (``()`` for none); ``es_map`` has an es class per leaf
(``common.PARAM``, ``MM_PARAM``, ``EMB_PARAM``, ``EXCLUDED``).
"""
from __future__ import annotations

from typing import Any, NamedTuple


class CommonInit(NamedTuple):
    """What ``rand_init`` returns."""

    frozen_params: Any
    params: Any
    scan_map: Any
    es_map: Any


class CommonParams(NamedTuple):
    """Everything a forward pass needs besides its inputs."""

    noiser: Any
    frozen_noiser_params: Any
    noiser_params: Any
    frozen_params: Any
    params: Any
    es_tree_key: Any
    iterinfo: Any


class Model:
    """Base of all models; subclasses implement ``rand_init`` and ``_forward``."""

    @classmethod
    def rand_init(cls, key, *args, **kwargs) -> CommonInit:
        """Fresh ``(frozen_params, params, scan_map, es_map)`` drawn from ``key``."""
        raise NotImplementedError(f"{cls.__name__} does not implement rand_init")

    @classmethod
    def forward(cls, noiser, frozen_noiser_params, noiser_params, frozen_params, params, es_tree_key, iterinfo,
                *args, **kwargs):
        """Run the model with ``iterinfo``'s noise (``None``: no noise); returns its output.

        For a population ``iterinfo`` the inputs and the output carry a leading member axis N.
        """
        common = CommonParams(noiser, frozen_noiser_params, noiser_params, frozen_params, params, es_tree_key,
                              iterinfo)
        return cls._forward(common, *args, **kwargs)

    @classmethod
    def _forward(cls, common_params: CommonParams, *args, **kwargs):
        raise NotImplementedError(f"{cls.__name__} does not implement _forward")
