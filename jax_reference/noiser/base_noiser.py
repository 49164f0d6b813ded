"""The noiser interface, and the no-op noiser ("noop") that perturbs and updates nothing.

A noiser is a class of classmethods over two dicts it creates in :meth:`Noiser.init_noiser`:
``frozen_noiser_params`` (static settings and the optax solver; close over it, never trace it)
and ``noiser_params`` (``sigma`` and the optimizer state: a pytree, may be traced).
Per-member methods take ``iterinfo = (epoch, thread_id)`` or ``None`` for the unperturbed model
and are vmapped over the population by the caller; ``base_key`` is the parameter's key from
``models.common.simple_es_tree_key``.
"""


class Noiser:
    """Identity noiser: the model's plain forward pass and no parameter change."""

    @classmethod
    def init_noiser(cls, params, sigma, lr, *args, solver=None, solver_kwargs=None, **kwargs):
        """Returns ``(frozen_noiser_params, noiser_params)``; both empty here.

        ``sigma``: perturbation scale; ``lr``: learning rate; ``solver``: an optax optimizer
        factory called as ``solver(lr, **solver_kwargs)``.
        """
        return {}, {}

    @classmethod
    def do_mm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ param.T`` for ``param`` of shape ``(out, in)``: ``(..., in) -> (..., out)``."""
        return x @ param.T

    @classmethod
    def do_Tmm(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """``x @ param`` for ``param`` of shape ``(in, out)``: ``(..., in) -> (..., out)``."""
        return x @ param

    @classmethod
    def do_emb(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo, x):
        """Rows ``param[x]`` of an embedding table ``(vocab, dim)`` for integer ``x``."""
        return param[x]

    @classmethod
    def get_noisy_standard(cls, frozen_noiser_params, noiser_params, param, base_key, iterinfo):
        """The parameter as this member sees it; unchanged here."""
        return param

    @classmethod
    def convert_fitnesses(cls, frozen_noiser_params, noiser_params, raw_scores, num_episodes_list=None):
        """Shaped fitnesses from raw scores ``(N,)``; returned unchanged here."""
        return raw_scores

    @classmethod
    def do_updates(cls, frozen_noiser_params, noiser_params, params, base_keys, fitnesses, iterinfos, es_map):
        """Returns ``(noiser_params, params)`` after one step; both unchanged here."""
        return noiser_params, params
