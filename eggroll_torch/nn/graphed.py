"""A whole ES generation of :class:`EggrollTrainer` recorded once as a CUDA graph and replayed.

A generation has static shapes: the pair engine's draws, the population forward, the user's
fitness, fitness shaping, the update and the optimizer step. Recorded once, it is replayed with
one launch, so Python and kernel-launch overhead disappear from the generation's time. What the
graph reads and writes must stay in the same tensors: the module's parameters (written in place),
the optimizer state (held in buffers the graph copies each new state into) and the epoch (a
device counter the graph advances). Replays give the same parameters as :meth:`EggrollTrainer.step`
within the ``reduction`` tolerance of matmul summation order (cuBLAS may choose other kernels
inside a graph), and the same noise bit for bit.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from eggroll_torch import tree
from eggroll_torch.fast.graphs import GraphedStep
from eggroll_torch.noiser._fitness import standardize_unchecked
from . import param_writes
from .metrics import update_metrics


class GraphedGeneration:
    """``trainer.graphed_step(fitness_fn)``: each call runs one generation, as ``trainer.step``.

    Recorded by :class:`eggroll_torch.fast.GraphedStep` after ``warmup`` eager generations on a
    side stream (so kernels are compiled and cuBLAS workspaces allocated) whose effects are undone
    before recording: the trainer is where it was before. On a device other than CUDA the calls
    run ``trainer.step``.

    Each call checks the raw fitness after the replay (one host synchronisation): a non-finite
    score raises ``ValueError`` and leaves parameters, optimizer state and epoch as they were,
    because the graph applies the update only when every score is finite.

    The graph belongs to the trainer state it was recorded from: after ``trainer.step``,
    ``trainer.update`` or ``load_state_dict`` a call raises ``RuntimeError``; record a new one.

    Args:
        trainer (EggrollTrainer): the trainer to step; on CUDA it must run the pair engine
            (``noiser="eggroll"`` or ``"reeggroll"``, even N).
        fitness_fn (Callable[[Population], torch.Tensor]): population -> raw fitness, a floating
            tensor ``(N,)`` on the trainer's device. On CUDA it is recorded, so it must run on the
            device only (no ``.item()``, no data-dependent shapes) and read its inputs from the
            same tensors every call (refill them in place to change the data).
        warmup (int): eager generations (>= 1) before recording. Default 2.

    Raises:
        ValueError: ``warmup`` is not an int >= 1; on CUDA, ``trainer`` does not run the pair
            engine, or ``fitness_fn`` returns anything but a floating ``(N,)`` tensor on the
            trainer's device during warmup or recording.
        TypeError: ``fitness_fn`` is not callable.
    """

    def __init__(self, trainer, fitness_fn: Callable, *, warmup: int = 2):
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1:
            raise ValueError(f"warmup must be an int >= 1 (kernels compile before recording); got {warmup!r}")
        if not callable(fitness_fn):
            raise TypeError(f"fitness_fn must be callable (population -> raw fitness (N,)); got {fitness_fn!r}")
        self._trainer = trainer
        self._fitness_fn = fitness_fn
        self._graph = None
        if trainer.device.type != "cuda":
            return
        if trainer._pairs(range(trainer.population_size)) is None:
            raise ValueError(
                "graphed_step needs the pair engine, which runs noiser='eggroll' (or 'reeggroll') with an even "
                f"population_size; this trainer has noiser {trainer.noiser.__name__} and N={trainer.population_size}. "
                "Use trainer.step instead"
            )
        saved = trainer.state_dict()
        leaves, self._state_def = tree.flatten(trainer._noiser_params)
        self._state = [leaf.clone() if isinstance(leaf, torch.Tensor) else leaf for leaf in leaves]
        trainer._noiser_params = tree.unflatten(self._state_def, self._state)
        self._epoch = torch.full((1,), trainer.epoch, dtype=torch.int64, device=trainer.device)
        # The state is restored before recording, not after: restoring replaces the engine's key
        # tensors and cached draws, which a recorded graph would still read at their old addresses.
        self._graph = GraphedStep(self._generation, trainer.device, warmup=warmup,
                                  after_warmup=lambda: self._restore(saved))
        self._expected = trainer._generation

    def _restore(self, saved: dict) -> None:
        trainer = self._trainer
        trainer.load_state_dict(saved)
        for buffer, leaf in zip(self._state, tree.leaves(trainer._noiser_params)):
            if isinstance(buffer, torch.Tensor):
                buffer.copy_(leaf)
        trainer._noiser_params = tree.unflatten(self._state_def, self._state)
        self._epoch.fill_(trainer.epoch)

    def _generation(self) -> dict:
        """One generation on device tensors only: no host synchronisation, static shapes."""
        trainer = self._trainer
        params = trainer._current_params()
        draws = trainer._engine.draw(self._epoch, range(trainer.population_size // 2),
                                     sigma=trainer._noiser_params["sigma"])
        raw = self._fitness_fn(trainer._paired_population(draws, params))
        if not isinstance(raw, torch.Tensor) or raw.shape != (trainer.population_size,) \
                or not raw.is_floating_point() or raw.device != trainer.device:
            got = (raw.dtype, tuple(raw.shape), raw.device) if isinstance(raw, torch.Tensor) else raw
            raise ValueError(
                f"fitness_fn must return a floating tensor of shape (N={trainer.population_size},) on "
                f"{trainer.device}; got {got}"
            )
        finite = torch.isfinite(raw).all()
        fitnesses = standardize_unchecked(raw, trainer._frozen["group_size"])
        new_noiser_params, new_params = trainer._paired_update(draws, params, fitnesses)
        metrics = update_metrics(raw, params, new_params)
        with torch.no_grad():
            param_writes.write_if(finite, list(params.values()), [new_params[path] for path in params])
            for buffer, leaf in zip(self._state, tree.leaves(new_noiser_params)):
                if isinstance(buffer, torch.Tensor):
                    buffer.copy_(torch.where(finite, leaf, buffer))
        self._epoch.add_(finite.to(self._epoch.dtype))
        return {"finite": finite, **metrics}

    @property
    def graphed(self) -> bool:
        """True when calls replay a CUDA graph (False off CUDA, where they run ``trainer.step``)."""
        return self._graph is not None and self._graph.graphed

    def __call__(self) -> dict:
        """Run one generation (replay the graph on CUDA, ``trainer.step`` elsewhere).

        Returns:
            dict: ``trainer.step``'s metrics: ``"epoch"`` (int, the epoch just evaluated) and
            ``"fitness_mean"``, ``"fitness_max"``, ``"fitness_min"``, ``"update_norm"`` as 0-d
            tensors on the device (copies, not the graph's own buffers).

        Raises:
            RuntimeError: the trainer was stepped, updated or loaded since the graph was
                recorded.
            ValueError: ``fitness_fn`` returned a NaN or infinite score; nothing was updated.
        """
        trainer = self._trainer
        if self._graph is None:
            return trainer.step(self._fitness_fn)
        if trainer._generation != self._expected:
            raise RuntimeError(
                "the trainer changed (step, update or load_state_dict) since this graph was recorded, so "
                "the graph would read stale state; record a new one with trainer.graphed_step(fitness_fn)"
            )
        outputs = self._graph()
        if not bool(outputs["finite"]):
            raise ValueError(
                f"fitness_fn returned a NaN or infinite score in epoch {trainer.epoch}; nothing was "
                "updated. Return one finite raw score per member"
            )
        metrics = {"epoch": trainer.epoch,
                   **{name: value.clone() for name, value in outputs.items() if name != "finite"}}
        trainer.epoch += 1
        trainer._generation += 1
        self._expected = trainer._generation
        return metrics
