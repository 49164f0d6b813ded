"""The trainer-level adapter protocol: certify a port that only exposes a trainer.

Most PyTorch ports offer a trainer over an ``nn.Module``, not upstream's functional API. A
:class:`TrainerAdapter` says how to build the port's trainer for a module the harness built and
how to run one generation with the harness's fitness function; the harness derives everything
else from probe modules whose outputs reveal each member's perturbation exactly (see
:mod:`conformance.trainer_checks`): noise per member, its rank and scale, antithetic pairs,
independence, ``noise_reuse``, fitness shaping, the update and training behaviour.

Writing one (a complete example is ``conformance/adapters/ports/eggroll_pytorch.py``)::

    class MyPortAdapter(TrainerAdapter):
        name = "my-port"

        def build(self, module, config):
            if config.group_size:
                raise Unsupported("my-port normalizes over the whole population only")
            return MyTrainer(module, sigma=config.sigma, lr=config.lr, rank=config.rank,
                             population=config.population, seed=config.seed)

        def step(self, trainer, inputs, fitness):
            trainer.train_step(lambda model: fitness(torch.stack([model(x) for x in inputs])))

and ``python -m conformance certify-ports --backend my_adapter.py``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable

from .base import BackendInfo, Unsupported

SOLVERS = ("sgd", "adam", "adamw")


@dataclass(frozen=True)
class TrainerConfig:
    """What a trainer is built with, in upstream's terms.

    Args:
        sigma (float): noise scale; member ``n``'s matrix perturbation is
            ``+-(sigma / sqrt(rank)) * A @ B.T``, its vector perturbation ``+-sigma * z``.
        lr (float): learning rate of the solver.
        rank (int): rank of each matrix perturbation.
        population (int): members per generation ``N`` (even: members ``2p``, ``2p + 1`` are a pair).
        group_size (int): 0: z-score over the population; ``G > 0``: subtract each group's mean,
            divide by the global standard deviation.
        noise_reuse (int): upstream's semantics: ``0`` draws the noise once for the whole run
            (``true_epoch = 0``), ``k > 0`` redraws it every ``k`` epochs.
        solver (str): ``"sgd"``, ``"adam"`` or ``"adamw"``, as optax defines them.
        solver_kwargs (tuple): ``((name, value), ...)`` of optax keyword arguments (``b1``, ``b2``,
            ``eps``, ``weight_decay``, ``momentum``).
        seed (int): the run's seed; different seeds must give independent noise.
    """

    sigma: float
    lr: float
    rank: int
    population: int
    group_size: int = 0
    noise_reuse: int = 1
    solver: str = "sgd"
    solver_kwargs: tuple = ()
    seed: int = 0

    @property
    def solver_options(self) -> dict:
        """``solver_kwargs`` as a dict."""
        return dict(self.solver_kwargs)


class TrainerAdapter(ABC):
    """Base class of trainer-level adapters; see the module docstring.

    The harness builds every module itself (float32 ``nn.Linear`` layers, ``nn.Sequential``
    MLPs), calls :meth:`build` once per run and :meth:`step` once per generation, and reads the
    module's parameters between steps: the port must update them in place.

    Attributes:
        name (str): the port's name in reports and on the command line.
    """

    name: str = "unnamed"

    def info(self) -> BackendInfo:
        """Name, version and device of the port (shown in every report).

        Returns:
            BackendInfo: ``name`` and ``"unknown"`` version and device unless overridden.
        """
        return BackendInfo(self.name, "unknown", "unknown")

    @abstractmethod
    def build(self, module, config: TrainerConfig) -> Any:
        """The port's trainer over ``module`` with ``config``.

        Args:
            module (torch.nn.Module): built by the harness; the trainer must train it in place.
            config (TrainerConfig): the settings, in upstream's terms.

        Returns:
            Any: whatever :meth:`step` takes.

        Raises:
            Unsupported: the port cannot express ``config`` (the case is reported as not run).
        """

    @abstractmethod
    def step(self, trainer, inputs, fitness: Callable) -> None:
        """One generation: every member evaluated, fitnesses shaped, parameters updated in place.

        Args:
            trainer: what :meth:`build` returned.
            inputs (torch.Tensor): ``(N, ...)``; member ``n`` runs the module on ``inputs[n]``.
            fitness (Callable[[torch.Tensor], torch.Tensor]): takes the outputs of the next
                ``K`` members in thread-id order (all ``N`` at once, or one at a time with
                ``K = 1``), stacked on a leading axis, and returns their ``(K,)`` raw
                fitnesses, higher is better. Calls after the ``N``-th (a port that scores its
                updated model) return zeros and are ignored.

        Raises:
            Unsupported: the port cannot run this generation.
        """


def is_trainer_adapter(obj) -> bool:
    """Whether ``obj`` is a :class:`TrainerAdapter` instance.

    Args:
        obj: anything a ``--backend`` spec produced.

    Returns:
        bool: ``isinstance(obj, TrainerAdapter)``.
    """
    return isinstance(obj, TrainerAdapter)


__all__ = ["SOLVERS", "TrainerAdapter", "TrainerConfig", "Unsupported", "is_trainer_adapter"]
