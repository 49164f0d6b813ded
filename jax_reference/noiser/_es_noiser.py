"""What the Gaussian noisers (EGGROLL and its variants, OpenES, Sparse) share: fitness shaping,
noisy standard parameters and the update driver. Subclasses set ``update_fns`` (one estimator
per es_map class: PARAM, MM_PARAM, EMB_PARAM, EXCLUDED), ``noise_fn`` and their forward matmuls.
The torch layer's ``eggroll_torch.noiser._es_noiser`` is the same class, name for name.
"""
from . import _forward, _update
from ._fitness import standardize_fitnesses
from .base_noiser import Noiser


class ESNoiser(Noiser):
    """Shared behaviour; not a noiser by itself (no ``update_fns``)."""

    update_fns: tuple = ()
    noise_fn = None

    @classmethod
    def do_emb(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """Not supported by upstream's noisers either: raises ``NotImplementedError``."""
        raise NotImplementedError(
            f"{cls.__name__} has no embedding lookup; mark embeddings EXCLUDED or use another noiser"
        )

    @classmethod
    def get_noisy_standard(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo):
        """``param + sigma * (+-normal)`` for this member; ``param`` if unperturbed or frozen."""
        return _forward.noisy_standard(cls.noise_fn, frozen_noiser_params, noiser_params,
                                       param, base_key, iterinfo)

    @classmethod
    def convert_fitnesses(cls, frozen_noiser_params, noiser_params, raw_scores, num_episodes_list=None):
        """Standardised fitnesses ``(N,)``; see ``_fitness.standardize_fitnesses``."""
        return standardize_fitnesses(raw_scores, frozen_noiser_params["group_size"])

    @classmethod
    def _do_update(cls, param, base_key, fitnesses, iterinfos, map_classification, sigma,
                   frozen_noiser_params, **kwargs):
        """Descent direction ``-(estimate * sqrt(fitnesses.size))`` for one leaf of es_map class
        ``map_classification``."""
        return _update.leaf_gradient(cls.update_fns[map_classification], param, base_key, fitnesses,
                                     iterinfos, sigma, frozen_noiser_params)

    @classmethod
    def do_updates(cls, frozen_noiser_params, noiser_params, params, base_keys, fitnesses, iterinfos, es_map):
        """One optimizer step from shaped ``fitnesses`` and ``iterinfos`` (two ``(N,)`` arrays).

        Returns ``(noiser_params, new_params)``; the ``noiser_params`` dict passed in is updated
        in place. Only EggRoll's ``init_noiser`` can set ``use_batched_update``, which picks a
        grouped computation with the same result.
        """
        if frozen_noiser_params.get("use_batched_update", False):
            return cls._do_updates_batched(frozen_noiser_params, noiser_params, params, base_keys,
                                           fitnesses, iterinfos, es_map)
        return cls._do_updates_original(frozen_noiser_params, noiser_params, params, base_keys,
                                        fitnesses, iterinfos, es_map)

    @classmethod
    def _leaf_update(cls, frozen_noiser_params, noiser_params, fitnesses, iterinfos):
        def update(param, key, es_class):
            return cls._do_update(param, key, fitnesses, iterinfos, es_class, noiser_params["sigma"],
                                  frozen_noiser_params)

        return update

    @classmethod
    def _do_updates_original(cls, frozen_noiser_params, noiser_params, params, base_keys, fitnesses,
                             iterinfos, es_map):
        """:meth:`do_updates` leaf by leaf."""
        grads = _update.gradient_tree(cls._leaf_update(frozen_noiser_params, noiser_params, fitnesses, iterinfos),
                                      params, base_keys, es_map)
        return _update.apply_solver(frozen_noiser_params, noiser_params, params, grads)

    @classmethod
    def _do_updates_batched(cls, frozen_noiser_params, noiser_params, params, base_keys, fitnesses,
                            iterinfos, es_map):
        """:meth:`do_updates` with same-shaped leaves of one es_map class vmapped together."""
        grads = _update.batched_gradient_tree(
            cls._leaf_update(frozen_noiser_params, noiser_params, fitnesses, iterinfos), params, base_keys, es_map
        )
        return _update.apply_solver(frozen_noiser_params, noiser_params, params, grads)
