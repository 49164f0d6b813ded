"""What the Gaussian noisers (EGGROLL and its variants, OpenES, Sparse) share: the noise seam,
fitness shaping, noisy standard parameters, the low-rank matrix forward and the update driver.

The noise seam: every forward and every estimator draws its noise through the classmethods
:meth:`ESNoiser.full_noise` and :meth:`ESNoiser.lora_noise` (and ``Sparse.sparse_noise``) of the
class it is called on, so a subclass that overrides one changes the forward pass and the update
alike. Subclasses override :meth:`ESNoiser.matrix_gradient` and the matrix forwards where their
matrices are not perturbed low-rank. ``jax_reference.noiser._es_noiser`` and
``eggroll_torch.noiser._es_noiser`` are the same class, name for name.
"""
from __future__ import annotations

from . import _estimators, _forward, _update
from ._fitness import standardize_fitnesses
from ._gaussian import get_lora_update_params, get_nonlora_update_params
from .base_noiser import Noiser


class ESNoiser(Noiser):
    """Shared behaviour; a concrete noiser adds ``init_noiser``."""

    @classmethod
    def full_noise(cls, frozen_noiser_params, base_sigma, iterinfo, param, key):
        """Full-rank noise ``(*S, *M, *shape)`` for ``param (*S, *shape)`` with key ``(*S, 2)``:
        ``+-base_sigma * normal`` in ``param.dtype`` (see ``_gaussian.get_nonlora_update_params``)."""
        return get_nonlora_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key)

    @classmethod
    def lora_noise(cls, frozen_noiser_params, base_sigma, iterinfo, param, key):
        """Low-rank factors ``(A (*S, *M, a, r), B (*S, *M, b, r))`` of the perturbation ``A @ B.T``
        of ``param (*S, a, b)``; ``base_sigma`` is ``sigma / sqrt(rank)`` and its sign is in ``A``
        (see ``_gaussian.get_lora_update_params``)."""
        return get_lora_update_params(frozen_noiser_params, base_sigma, iterinfo, param, key)

    @classmethod
    def matrix_gradient(cls, base_sigma, param, key, scores, iterinfo, frozen_noiser_params):
        """The estimate ``(*S, a, b)`` of an ``MM_PARAM`` leaf, with upstream's per-leaf update
        arguments: ``sum_n f_n A_n @ B_n.T / N`` over :meth:`lora_noise`'s factors."""
        return _estimators.low_rank_gradient(cls.lora_noise, base_sigma, param, key, scores, iterinfo,
                                             frozen_noiser_params)

    @classmethod
    def do_mm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ param.T + x @ B @ A.T``: ``param (out, in)``, ``x (..., in)`` or ``(N, ..., in)``."""
        return _forward.low_rank_mm(cls.lora_noise, frozen_noiser_params, noiser_params, param, base_key, iterinfo,
                                    x, transposed=False)

    @classmethod
    def do_Tmm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ param + x @ A @ B.T``: ``param (in, out)``."""
        return _forward.low_rank_mm(cls.lora_noise, frozen_noiser_params, noiser_params, param, base_key, iterinfo,
                                    x, transposed=True)

    @classmethod
    def do_emb(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """Not implemented upstream either: raises ``NotImplementedError``."""
        raise NotImplementedError(
            f"{cls.__name__} has no embedding lookup (upstream raises too); mark embeddings EXCLUDED "
            "or EMB_PARAM and look them up without noise"
        )

    @classmethod
    def get_noisy_standard(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo):
        """``param + (+-sigma) * normal``: ``(*shape)`` or ``(N, *shape)``; ``param`` if unperturbed or frozen."""
        return _forward.noisy_standard(cls.full_noise, frozen_noiser_params, noiser_params, param, base_key,
                                       iterinfo)

    @classmethod
    def convert_fitnesses(cls, frozen_noiser_params, noiser_params, raw_scores, num_episodes_list=None):
        """Standardised fitnesses ``(N,)`` (see ``_fitness.standardize_fitnesses``)."""
        return standardize_fitnesses(raw_scores, frozen_noiser_params["group_size"])

    @classmethod
    def _do_update(cls, param, base_key, fitnesses, iterinfos, map_classification, sigma, frozen_noiser_params,
                   **kwargs):
        """Descent direction ``-(estimate * sqrt(N))`` of one leaf of es class ``map_classification``."""
        return _update.leaf_gradient(_estimators.update_fns(cls)[map_classification], param, base_key, fitnesses,
                                     iterinfos, sigma, frozen_noiser_params)

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
