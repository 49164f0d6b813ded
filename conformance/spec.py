"""Plain-data descriptions of what a backend is asked to compute.

Every value here is numpy or JSON-able, so the same specification can be fed to a JAX backend,
a PyTorch backend, recorded in a golden vector and hashed. Nothing here imports a framework.

Shapes: ``N`` is the population size, ``a x b`` a matrix parameter's shape, ``r`` the rank.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

# es_map classes, numbered as upstream numbers them.
PARAM, MM_PARAM, EMB_PARAM, EXCLUDED = 0, 1, 2, 3

# The one list of noiser names: upstream's registry (``hyperscalees.noiser.all_noisers``) as plain
# data, name -> (module under ``noiser``, class). "reeggroll" is EGGROLL again, as upstream has it.
# jax_reference's and eggroll_torch's ``all_noisers`` are held to it
# (tests/conformance/test_conformance_registry.py).
NOISERS = {
    "noop": ("base_noiser", "Noiser"),
    "open_es": ("open_es", "OpenES"),
    "eggroll": ("eggroll", "EggRoll"),
    "eggrollbs": ("eggroll_baseline_subtraction", "EggRollBS"),
    "alteggroll": ("alteggroll", "EggRoll"),
    "reeggroll": ("eggroll", "EggRoll"),
    "sparse": ("sparse", "Sparse"),
}
# Every noiser that perturbs, each once: NOISERS without the identity noiser and the alias.
PERTURBING_NOISERS = tuple(name for name in NOISERS if name not in ("noop", "reeggroll"))
SOLVERS = ("sgd", "adam", "adamw")
# Solver arguments that are dtypes (optax's adam keeps its first moment in ``mu_dtype``).
DTYPE_ARGUMENTS = ("mu_dtype",)
# The epsilon of upstream's fitness z-score, added to the variance inside the root:
# ``(raw - mean) / sqrt(var + VARIANCE_EPS)``.
VARIANCE_EPS = 1e-5


@dataclass(frozen=True)
class SolverSpec:
    """An optax solver by name plus its keyword arguments other than the learning rate.

    ``name`` is one of :data:`SOLVERS`; ``kwargs`` is a tuple of ``(name, value)`` pairs so the
    spec stays hashable (``{"b1": 0.9}`` becomes ``(("b1", 0.9),)``).
    """

    name: str = "sgd"
    kwargs: tuple = ()

    def __post_init__(self):
        if self.name not in SOLVERS:
            raise ValueError(f"SolverSpec.name must be one of {SOLVERS}, got {self.name!r}")

    @property
    def kwargs_dict(self) -> dict:
        return dict(self.kwargs)

    def library_kwargs(self, to_dtype) -> dict:
        """:attr:`kwargs_dict` for a library: dtype arguments (:data:`DTYPE_ARGUMENTS`, stored by
        name so the spec stays plain data) become ``to_dtype(name)``, e.g. ``jnp.dtype``."""
        return {k: to_dtype(v) if k in DTYPE_ARGUMENTS and v is not None else v for k, v in self.kwargs}

    def to_json(self) -> dict:
        """Returns:
            dict: ``{"name": name, "kwargs": {argument: value}}``, as reports and vectors store it.
        """
        return {"name": self.name, "kwargs": self.kwargs_dict}

    @classmethod
    def make(cls, name: str = "sgd", **kwargs) -> "SolverSpec":
        """Build a spec from keyword arguments.

        Args:
            name (str): one of :data:`SOLVERS`.
            **kwargs: the solver's arguments besides the learning rate, e.g. ``b1=0.9``.

        Returns:
            SolverSpec: with ``kwargs`` stored as sorted ``(name, value)`` pairs.

        Raises:
            ValueError: ``name`` is not in :data:`SOLVERS`.
        """
        return cls(name, tuple(sorted(kwargs.items())))


@dataclass(frozen=True)
class NoiserConfig:
    """Arguments of ``Noiser.init_noiser`` for one noiser.

    ``solver=None`` means "not passed" (the library default, ``optax.sgd``), which is a
    behaviour of its own and is checked as such.
    """

    noiser: str = "eggroll"
    sigma: float = 0.1
    lr: float = 1.0
    rank: int = 1
    group_size: int = 0
    noise_reuse: int = 0
    freeze_nonlora: bool = False
    use_batched_update: bool = False
    trust_region_norm: float = 1.0
    solver: SolverSpec | None = None

    def __post_init__(self):
        if self.noiser not in NOISERS:
            raise ValueError(f"NoiserConfig.noiser must be one of {tuple(NOISERS)}, got {self.noiser!r}")

    def with_(self, **changes) -> "NoiserConfig":
        """A copy with ``changes`` applied.

        Args:
            **changes: field names of :class:`NoiserConfig` and their new values.

        Returns:
            NoiserConfig: a new config; this one is unchanged.

        Raises:
            TypeError: a name is not a field.
            ValueError: the new ``noiser`` is not in :data:`NOISERS`.
        """
        return replace(self, **changes)

    def init_kwargs(self) -> dict:
        """Keyword arguments for ``init_noiser`` besides params, sigma and lr (solver excluded).

        Returns:
            dict: ``group_size``, ``freeze_nonlora``, ``noise_reuse`` and ``rank``, plus
            ``use_batched_update`` for EGGROLL and ReEGGROLL and ``trust_region_norm`` for
            EGGROLL-BS (the other noisers do not take them).
        """
        kw = {"group_size": self.group_size, "freeze_nonlora": self.freeze_nonlora,
              "noise_reuse": self.noise_reuse, "rank": self.rank}
        if self.noiser in ("eggroll", "reeggroll"):
            kw["use_batched_update"] = self.use_batched_update
        if self.noiser == "eggrollbs":
            kw["trust_region_norm"] = self.trust_region_norm
        return kw

    def to_json(self) -> dict:
        """Returns:
            dict: every field, ``solver`` as :meth:`SolverSpec.to_json` or ``None``.
        """
        d = asdict(self)
        d["solver"] = None if self.solver is None else self.solver.to_json()
        return d


@dataclass(frozen=True)
class Population:
    """``iterinfo`` of a population: ``epochs`` and ``thread_ids``, two int32 arrays ``(N,)``."""

    epochs: np.ndarray
    thread_ids: np.ndarray

    def __post_init__(self):
        e = np.asarray(self.epochs)
        t = np.asarray(self.thread_ids)
        if e.shape != t.shape or e.ndim != 1:
            raise ValueError(f"Population needs epochs and thread_ids of equal 1-D shape, got {e.shape} and {t.shape}")
        object.__setattr__(self, "epochs", e.astype(np.int32))
        object.__setattr__(self, "thread_ids", t.astype(np.int32))

    @property
    def size(self) -> int:
        return int(self.thread_ids.shape[0])

    @classmethod
    def of(cls, thread_ids, epoch=0) -> "Population":
        """All members at one ``epoch`` (an int) or at per-member epochs (an array).

        Args:
            thread_ids (array-like of int): ``(N,)`` thread ids.
            epoch (int | array-like of int): one epoch for every member, or ``(N,)`` epochs.

        Returns:
            Population: int32 ``epochs`` and ``thread_ids`` of shape ``(N,)``.

        Raises:
            ValueError: ``epoch`` does not broadcast to the shape of ``thread_ids``.
        """
        t = np.asarray(thread_ids, dtype=np.int32)
        e = np.broadcast_to(np.asarray(epoch, dtype=np.int32), t.shape).copy()
        return cls(e, t)


@dataclass(frozen=True)
class LeafNoise:
    """Reference noise of one leaf for a whole population, for ports that cannot draw JAX's noise.

    ``kind`` is ``"lora"`` (``arrays = (A (N, a, r), B (N, b, r))``, sign and
    ``sigma / sqrt(rank)`` already in ``A``), ``"full"`` (``arrays = (noise (N, *shape),)`` with
    sign and sigma in it) or ``"none"`` (leaf not perturbed).
    """

    kind: str
    arrays: tuple = ()


@dataclass(frozen=True)
class TrajectorySpec:
    """The end-to-end MLP example (upstream's ``tests/end_to_end_test.py`` setting).

    ``seed`` gives ``key(seed)``; model, ES and data keys are ``fold_in(key, 0 | 1 | 2)``.
    Each epoch draws an input batch ``(num_envs, in_dim)``, scores ``-(y - 2)**2``, shapes the
    fitnesses and takes one update step.
    """

    seed: int = 0
    num_epochs: int = 10
    num_envs: int = 64
    in_dim: int = 3
    hidden_dims: tuple = (16, 16)
    sigma: float = 0.2
    lr: float = 0.03
    rank: int = 8
    noise_reuse: int = 0
    noiser: str = "eggroll"
    solver: SolverSpec = field(default_factory=lambda: SolverSpec.make("adamw", b1=0.9, b2=0.999))

    def to_json(self) -> dict:
        """Returns:
            dict: every field, ``hidden_dims`` as a list and ``solver`` as :meth:`SolverSpec.to_json`.
        """
        d = asdict(self)
        d["hidden_dims"] = list(self.hidden_dims)
        d["solver"] = self.solver.to_json()
        return d


@dataclass
class Trajectory:
    """What a backend returns for a :class:`TrajectorySpec`.

    ``params``: ``num_epochs + 1`` parameter trees (initial, then after every epoch);
    ``scores``: ``(num_epochs, num_envs)`` raw fitnesses of the noisy population per epoch.
    """

    params: list
    scores: np.ndarray
