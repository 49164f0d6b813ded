"""``Noiser`` ("noop"): the interface every noiser implements, with no noise and no update.

All methods are classmethods taking upstream's arguments in upstream's order. ``iterinfo`` is
``None`` (no noise), ``(epoch, thread_id)`` for one member, or ``(epochs, thread_ids)`` (two 1-D
integer tensors of length N) for a population, in which case noise-carrying inputs and outputs
carry a leading member axis N.
"""
from __future__ import annotations

from ._forward import matmul


class Noiser:
    """Identity noiser: forwards are the plain operations and ``do_updates`` changes nothing."""

    @classmethod
    def init_noiser(cls, params, sigma, lr, *args, solver=None, solver_kwargs=None, **kwargs):
        """Returns ``(frozen_noiser_params, noiser_params)``; both empty for the identity noiser.

        Subclasses take ``sigma`` (noise scale), ``lr`` (learning rate), ``solver`` (an optimizer
        factory called as ``solver(lr, **solver_kwargs)``, default ``optim.sgd``) and options.
        optax's factories (``optax.sgd``, ``optax.adam``, ``optax.adamw``, ``optax.nadam``,
        ``optax.nadamw``) are replaced by eggroll_torch's equivalents (``optim.resolve_solver``).
        """
        return {}, {}

    @classmethod
    def do_mm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ param.T``; ``param`` is ``(out, in)``."""
        return matmul(x, param.T)

    @classmethod
    def do_Tmm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ param``; ``param`` is ``(in, out)``."""
        return matmul(x, param)

    @classmethod
    def do_emb(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """Embedding lookup ``param[x]`` (``x`` integer indices)."""
        return param[x]

    @classmethod
    def get_noisy_standard(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo):
        """The parameter itself."""
        return param

    @classmethod
    def convert_fitnesses(cls, frozen_noiser_params, noiser_params, raw_scores, num_episodes_list=None):
        """Raw scores unchanged."""
        return raw_scores

    @classmethod
    def do_updates(cls, frozen_noiser_params, noiser_params, params, base_keys, fitnesses, iterinfos, es_map):
        """``(noiser_params, params)`` unchanged."""
        return noiser_params, params

