"""What the Gaussian noisers (EGGROLL and its variants, OpenES) share: fitness shaping, noisy
standard parameters and the update driver. Subclasses set ``update_fns`` (one estimator per es
class: PARAM, MM_PARAM, EMB_PARAM, EXCLUDED), ``noise_fn`` and their forward matmuls.
"""
from __future__ import annotations

from . import _forward, _update
from ._fitness import standardize_fitnesses
from .base_noiser import Noiser


class ESNoiser(Noiser):
    """Shared behaviour; not a noiser by itself (no ``update_fns``)."""

    update_fns: tuple = ()
    noise_fn = None

    @classmethod
    def do_emb(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """Not implemented upstream either: raises ``NotImplementedError``."""
        raise NotImplementedError(
            f"{cls.__name__} has no embedding lookup (upstream raises too); mark embeddings EXCLUDED "
            "or EMB_PARAM and look them up without noise"
        )

    @classmethod
    def get_noisy_standard(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo):
        """``param + (+-sigma) * normal``: ``(*shape)`` or ``(N, *shape)``; ``param`` if unperturbed."""
        return _forward.noisy_standard(cls.noise_fn, frozen_noiser_params, noiser_params, param,
                                       base_key, iterinfo)

    @classmethod
    def convert_fitnesses(cls, frozen_noiser_params, noiser_params, raw_scores, num_episodes_list=None):
        """Standardised fitnesses ``(N,)`` (see ``_fitness.standardize_fitnesses``)."""
        return standardize_fitnesses(raw_scores, frozen_noiser_params["group_size"])

    @classmethod
    def _do_update(cls, param, base_key, fitnesses, iterinfos, map_classification, sigma, frozen_noiser_params,
                   **kwargs):
        """Descent direction ``-(estimate * sqrt(N))`` of one leaf of es class ``map_classification``."""
        return _update.leaf_gradient(cls.update_fns[map_classification], param, base_key, fitnesses, iterinfos,
                                     sigma, frozen_noiser_params)

    @classmethod
    def do_updates(cls, frozen_noiser_params, noiser_params, params, base_keys, fitnesses, iterinfos, es_map):
        """One optimizer step from shaped ``fitnesses (N,)`` and population ``iterinfos``.

        Returns ``(new noiser_params, new params)``; the arguments are not modified. All inputs
        are validated first, so a rejected call leaves everything as it was.
        """
        _update.check_update(noiser_params, params, base_keys, fitnesses, iterinfos, es_map)
        if frozen_noiser_params.get("use_batched_update", False):
            return cls._do_updates_batched(frozen_noiser_params, noiser_params, params, base_keys, fitnesses,
                                           iterinfos, es_map)
        return cls._do_updates_original(frozen_noiser_params, noiser_params, params, base_keys, fitnesses,
                                        iterinfos, es_map)

    @classmethod
    def _leaf_update(cls, frozen_noiser_params, noiser_params, fitnesses, iterinfos):
        def update(param, key, es_class):
            return cls._do_update(param, key, fitnesses, iterinfos, es_class, noiser_params["sigma"],
                                  frozen_noiser_params)

        return update

    @classmethod
    def _do_updates_original(cls, frozen_noiser_params, noiser_params, params, base_keys, fitnesses, iterinfos,
                             es_map):
        """:meth:`do_updates` leaf by leaf."""
        grads = _update.gradient_tree(cls._leaf_update(frozen_noiser_params, noiser_params, fitnesses, iterinfos),
                                      params, base_keys, es_map)
        return _update.apply_solver(frozen_noiser_params, noiser_params, params, grads)

    @classmethod
    def _do_updates_batched(cls, frozen_noiser_params, noiser_params, params, base_keys, fitnesses, iterinfos,
                            es_map):
        """:meth:`do_updates` with same-shaped leaves of one es class estimated together."""
        grads = _update.batched_gradient_tree(
            cls._leaf_update(frozen_noiser_params, noiser_params, fitnesses, iterinfos), params, base_keys, es_map
        )
        return _update.apply_solver(frozen_noiser_params, noiser_params, params, grads)
