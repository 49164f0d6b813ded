"""What a model is: an init returning four matching pytrees, and a forward over noised params."""
from typing import NamedTuple


class CommonInit(NamedTuple):
    """Result of ``rand_init``.

    ``frozen_params``: static, never-updated settings (or None); ``params``: the trainable
    pytree; ``scan_map``: per leaf, ``()`` or a tuple of stacked axes (see
    ``common.recursive_scan_split``); ``es_map``: per leaf, one of ``common.PARAM``,
    ``MM_PARAM``, ``EMB_PARAM``, ``EXCLUDED``.
    """

    frozen_params: any
    params: any
    scan_map: any
    es_map: any


class CommonParams(NamedTuple):
    """Everything one forward call threads down to its submodules."""

    noiser: any
    frozen_noiser_params: any
    noiser_params: any
    frozen_params: any
    params: any
    es_tree_key: any
    iterinfo: any


class Model:
    """A model is a class of classmethods; subclasses implement ``rand_init`` and ``_forward``."""

    @classmethod
    def rand_init(cls, key, *args, **kwargs):
        """Returns a :class:`CommonInit` for freshly initialised parameters."""
        raise NotImplementedError(f"{cls.__name__} does not define rand_init")

    @classmethod
    def forward(cls, noiser, frozen_noiser_params, noiser_params, frozen_params, params, es_tree_key,
                iterinfo, *args, **kwargs):
        """Output of one population member (``iterinfo = (epoch, thread_id)``), or of the
        unperturbed model (``iterinfo=None``); remaining arguments go to ``_forward``."""
        return cls._forward(
            CommonParams(noiser, frozen_noiser_params, noiser_params, frozen_params, params, es_tree_key,
                         iterinfo),
            *args, **kwargs,
        )

    @classmethod
    def _forward(cls, common_params, *args, **kwargs):
        """The forward pass given a :class:`CommonParams`."""
        raise NotImplementedError(f"{cls.__name__} does not define _forward")
