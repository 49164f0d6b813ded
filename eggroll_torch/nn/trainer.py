"""``EggrollTrainer``: evolution strategies over the parameters of any ``nn.Module``.

The module's parameters become the nested dict ``params`` of the functional layer (path
``"0.weight"`` -> ``params["0"]["weight"]``) and keys come from ``simple_es_tree_key``
(:mod:`.param_tree`); member ``n`` of epoch ``e`` is upstream's ``iterinfo = (e, n)``.

Two engines compute an epoch:

- EGGROLL (``noiser="eggroll"`` or ``"reeggroll"``) with an even N runs the pair engine
  (:mod:`.engine`): each antithetic pair's noise is drawn once, in bulk, read by the forward and
  the update, and the update is one matmul per matrix. Noise is the functional layer's bit for
  bit; the update agrees with ``do_updates`` within the ``reduction`` tolerance (summation
  order). :meth:`EggrollTrainer.graphed_step` replays such a generation as a CUDA graph.
- Every other noiser, and an odd N, calls the noiser's ``convert_fitnesses`` and ``do_updates``
  on ``params`` with ``iterinfo = (full(N, epoch), arange(N))``: the functional update, bit for bit.

A :class:`~.functional_module.FunctionalModule` (a functional model of ``eggroll_torch.models``,
e.g. RWKV-7, as a module) always takes the second way, and its population is the model's own
forward with the members' ``iterinfo``: noise, forward and update are the functional layer's bit
for bit, for every noiser, its layer-stacked leaves included.

Population size: any N >= 1 is accepted, as upstream accepts it. Members ``2i`` and ``2i + 1``
are an antithetic pair; with an odd N the last member has no partner, which leaves the estimate
unbiased but noisier, so prefer an even N.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

import torch
from torch import nn

from eggroll_torch import random as es_random
from eggroll_torch.models.common import MM_PARAM, PARAM
from eggroll_torch.optim import resolve_solver
from eggroll_torch.noiser import _update
from eggroll_torch.noiser._fitness import standardize_unchecked
from eggroll_torch.validation import check_count, check_fitnesses, check_positive_real, check_real
from . import checks, engine, param_writes, state
from .es_classes import matrix_biases, named_parameters_with_owner, resolve_es_classes
from .functional_module import FunctionalModule, FunctionalPopulation
from .graphed import GraphedGeneration
from .metrics import update_metrics
from .noisers import low_rank_factors, resolve_noiser
from .param_tree import assign_keys, flatten_paths, nest
from .population import Population
from .routing import MatrixRoute


class EggrollTrainer:
    """Trains ``module`` in place with EGGROLL (or another noiser) and a population of N members.

    Member ``n`` of epoch ``e`` is upstream's ``iterinfo = (e, n)``; members ``2i`` and ``2i + 1``
    are an antithetic pair. Every argument is validated before the module or any state is
    touched, so a constructor that raises leaves ``module`` as it was.

    Args:
        module (nn.Module): the model to evolve. Its parameters (every distinct
            ``nn.Parameter``, tied weights once) are updated in place after every step; they
            must be materialised (no lazy modules) and, unless ``device`` is given, on one device.
        sigma (float): noise scale, a finite number > 0 (a 0-d float tensor is accepted).
        lr (float): learning rate handed to the solver, any finite number.
        population_size (int): N >= 1, members per epoch (thread ids ``0 .. N-1``). Prefer an
            even N: with an odd N the last member has no antithetic partner, and only EGGROLL
            with an even N runs the pair engine.
        rank (int): rank r >= 1 of the low-rank noise ``A @ B.T`` of ``MM_PARAM`` matrices.
            Default 1.
        noiser (str | type): a name from ``eggroll_torch.noiser.all_noisers`` (``"eggroll"``,
            the default, ``"reeggroll"``, ``"alteggroll"``, ``"eggrollbs"``, ``"open_es"``,
            ``"sparse"``, ``"noop"``) or a ``Noiser`` subclass.
        solver (str | Callable | type): ``"sgd"`` (default), ``"adam"``, ``"adamw"``, an
            optax-style factory ``(lr, **solver_kwargs) -> GradientTransformation`` (e.g.
            ``eggroll_torch.optim.adamw``) or a ``torch.optim.Optimizer`` class (wrapped; outside
            the JAX parity guarantee). optax's ``sgd``, ``adam``, ``adamw``, ``nadam`` and ``nadamw``
            factories (e.g. ``optax.adamw``) are replaced by eggroll_torch's equivalents.
        solver_kwargs (Mapping | None): keyword arguments of the solver besides the learning
            rate, e.g. ``{"b1": 0.9}``. Default none.
        group_size (int): 0 (default) normalizes fitnesses over the whole population; G > 0,
            which must divide N, subtracts each group's mean instead.
        noise_reuse (int): 0 (default, upstream's) keeps the same noise every epoch, 1 redraws
            it each epoch, n > 1 shares it over blocks of n epochs.
        freeze_nonlora (bool): when True, non-matrix (``PARAM``) parameters get no noise and no
            update. Default False.
        seed (int | None): builds the ES key ``eggroll_torch.random.key(seed)``; an int in
            int64 range or an integer scalar. Default 0 when ``es_key`` is not given either.
        es_key (torch.Tensor | None): the ES key itself, a ``torch.uint32`` tensor of shape
            ``(2,)``. Give at most one of ``seed`` and ``es_key``.
        device (torch.device | str | None): moves ``module`` there (``module.to(device)``) once
            everything is validated; default: where its parameters already are.
        es_classes (Mapping[str, int] | None): ``{parameter path: PARAM | MM_PARAM | EMB_PARAM |
            EXCLUDED}`` overriding the defaults of :mod:`.es_classes` (see
            :func:`resolve_es_classes`).
        noiser_kwargs (Mapping | None): further ``init_noiser`` keyword arguments
            (``use_batched_update``, ``trust_region_norm``, ...).
        keep_noise (bool): the pair engine's memory against its time. True (default): each
            matrix's noise is drawn once per epoch and kept from the population to the update,
            ``N/2 * r * (in + out)`` values for every matrix at once. False: a matrix's noise is
            drawn each time a population's forward multiplies by it (once per layer and call in a
            feed-forward network, at every step of a recurrence) and again for its update, and
            dropped after each use, so only one matrix's noise is held at a time; the values,
            outputs and updates are the same bits, the noise is drawn at least twice. Only the
            pair engine draws this way: False needs ``noiser="eggroll"`` (or ``"reeggroll"``), an
            even ``population_size`` and a plain ``nn.Module``.

    Raises:
        TypeError: ``module`` is not an ``nn.Module``; a number, flag, mapping, noiser, solver
            or ``es_key`` has the wrong type.
        ValueError: ``sigma`` <= 0 or a non-finite ``sigma``/``lr``; a count below its minimum;
            ``group_size`` does not divide N; an unknown noiser or solver name, or an optax solver
            with no eggroll_torch equivalent; both ``seed`` and ``es_key``, or an ``es_key`` not of
            shape ``(2,)``; a bad ``es_classes`` entry; ``keep_noise=False`` without the pair
            engine; a module without parameters, with lazy parameters, or on several devices without
            ``device``. Errors of the noiser's ``init_noiser`` (e.g. a ``solver_kwargs`` typo)
            propagate unchanged.

    Attributes:
        module (nn.Module): the trained module (moved to ``device`` when given).
        population_size (int): N.
        noiser (type): the resolved ``Noiser`` class.
        device (torch.device): where the parameters, keys and metrics live.
        es_classes (dict[str, int]): the ES class of every parameter path, overrides applied.
        es_key (torch.Tensor): the ES key, ``torch.uint32`` ``(2,)`` on ``device``.
        epoch (int): the epoch the next population and update belong to; starts at 0.
    """

    def __init__(
        self,
        module: nn.Module,
        sigma: float,
        lr: float,
        *,
        population_size: int,
        rank: int = 1,
        noiser="eggroll",
        solver="sgd",
        solver_kwargs: Mapping | None = None,
        group_size: int = 0,
        noise_reuse: int = 0,
        freeze_nonlora: bool = False,
        seed: int | None = None,
        es_key: torch.Tensor | None = None,
        device: torch.device | str | None = None,
        es_classes: Mapping[str, int] | None = None,
        noiser_kwargs: Mapping | None = None,
        keep_noise: bool = True,
    ):
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        sigma = check_positive_real("sigma", sigma)
        lr = check_real("lr", lr)
        self.population_size = check_count("population_size", population_size, 1)
        rank = check_count("rank", rank, 1)
        group_size = checks.group_size(group_size, self.population_size)
        noise_reuse = check_count("noise_reuse", noise_reuse, 0)
        if not isinstance(freeze_nonlora, bool):
            raise TypeError(f"freeze_nonlora must be True or False, got {freeze_nonlora!r}")
        if not isinstance(keep_noise, bool):
            raise TypeError(f"keep_noise must be True or False, got {keep_noise!r}")
        self.noiser = resolve_noiser(noiser)
        solver_fn = resolve_solver(solver)
        if solver_kwargs is not None and not isinstance(solver_kwargs, Mapping):
            raise TypeError(f"solver_kwargs must be a dict of keyword arguments, got {type(solver_kwargs).__name__}")
        if noiser_kwargs is not None and not isinstance(noiser_kwargs, Mapping):
            raise TypeError(f"noiser_kwargs must be a dict of keyword arguments, got {type(noiser_kwargs).__name__}")
        es_key = _resolve_es_key(seed, es_key)
        paired = engine.supports(self.noiser, self.population_size) and not isinstance(module, FunctionalModule)
        if not keep_noise and not paired:
            raise ValueError(
                "keep_noise=False applies to the pair engine, which runs noiser='eggroll' (or 'reeggroll') with an "
                f"even population_size on a plain nn.Module; this trainer has noiser {self.noiser.__name__}, "
                f"N={self.population_size}{' and a FunctionalModule' if isinstance(module, FunctionalModule) else ''}. "
                "Leave keep_noise=True"
            )
        classes = resolve_es_classes(module, es_classes)
        _check_parameters(module, device)

        # Everything is built on copies on the target device first, so that a failing
        # init_noiser (e.g. a solver_kwargs typo) leaves the module where it was.
        params = _read_params(module)
        if device is not None:
            params = {path: p.to(device) for path, p in params.items()}
        self.device = next(iter(params.values())).device
        es_key = es_key.to(self.device)
        self._functional = isinstance(module, FunctionalModule)
        keys = assign_keys(params, es_key, module.scan_paths if self._functional else None)
        frozen, noiser_params = self.noiser.init_noiser(
            nest(params), sigma, lr,
            solver=solver_fn, solver_kwargs=dict(solver_kwargs or {}),
            group_size=group_size, freeze_nonlora=freeze_nonlora, noise_reuse=noise_reuse, rank=rank,
            **dict(noiser_kwargs or {}),
        )
        if device is not None:
            module.to(self.device)
        self.module = module
        self.es_classes = classes
        self.es_key = es_key
        self._keys = keys
        self._frozen, self._noiser_params = frozen, noiser_params
        self._signature = {path: (p.shape, p.dtype) for path, p in params.items()}
        # The bias path of each nn.Linear's weight: the pair engine folds it into the correction.
        self._linear_biases = matrix_biases(module)
        # Set by eggroll_torch.distributed's sharded update while it runs an update.
        self._sharding = None
        self._engine = None
        if paired:
            self._engine = engine.PairEngine(params, classes, keys, rank=rank, noise_reuse=noise_reuse,
                                             freeze_nonlora=freeze_nonlora, biased=frozenset(self._linear_biases),
                                             keep=keep_noise)
        self.epoch = 0
        self._generation = 0

    @property
    def keep_noise(self) -> bool:
        """Whether the pair engine keeps each epoch's draws (the constructor's ``keep_noise``;
        fixed for the trainer's life; True without the pair engine, which only accepts True)."""
        return self._engine is None or self._engine.keep

    @property
    def keys(self) -> dict[str, torch.Tensor]:
        """The ES key of every parameter path (see :mod:`.param_tree` for how they are assigned)."""
        return dict(self._keys)

    @property
    def frozen_noiser_params(self) -> dict:
        """The functional layer's ``frozen_noiser_params`` built by ``init_noiser``."""
        return self._frozen

    @property
    def noiser_params(self):
        """The functional layer's ``noiser_params`` (``{"sigma", "opt_state"}``), read-only by contract."""
        return self._noiser_params

    def iterinfo(self, members: range | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Upstream's ``iterinfo`` of the current epoch for a contiguous set of members.

        Args:
            members (range | None): thread ids to describe, a non-empty ``range`` with step 1
                inside ``range(N)``. Default ``None``: all N.

        Returns:
            tuple[torch.Tensor, torch.Tensor]: ``(epochs, thread_ids)``, two int32 tensors of
            shape ``(len(members),)`` on the trainer's device: ``epochs`` is filled with
            :attr:`epoch` and ``thread_ids`` is ``members`` in order.

        Raises:
            TypeError: ``members`` is not a ``range`` with step 1.
            ValueError: ``members`` is empty or leaves ``range(N)``.
        """
        members = self._members(members)
        return (
            torch.full((len(members),), self.epoch, dtype=torch.int32, device=self.device),
            torch.arange(members.start, members.stop, dtype=torch.int32, device=self.device),
        )

    def population(self, members: range | None = None) -> Population | FunctionalPopulation:
        """The current epoch's perturbed members as one callable (see :class:`Population`).

        The epoch's noise for these members is drawn here, once, and read by every call of the
        result; building a population changes no trainer state.

        Args:
            members (range | None): a contiguous ``range`` (step 1) of thread ids inside
                ``range(N)`` to build, e.g. one worker's share. Default ``None``: ``range(N)``.
                Member ``j`` of the result is thread id ``members.start + j`` and sees exactly
                the noise it has in the full population.

        Returns:
            Population | FunctionalPopulation: ``len(members)`` perturbed copies of :attr:`module`
            (a :class:`FunctionalPopulation` for a :class:`FunctionalModule`), valid until the
            parameters next change (:meth:`update`, :meth:`step`, :meth:`load_state_dict`).

        Raises:
            TypeError: ``members`` is not a ``range`` with step 1.
            ValueError: ``members`` is empty or leaves ``range(N)``.
            RuntimeError: the module's parameters changed names, shapes or dtypes since the
                trainer was built.
        """
        members = self._members(members)
        params = self._current_params()
        if self._functional:
            return self._functional_population(members, params)
        pairs = self._pairs(members)
        if pairs is not None:
            return self._paired_population(
                self._engine.draw(self.epoch, pairs, sigma=self._noiser_params["sigma"]), params)
        iterinfo = self.iterinfo(members)
        shared, values, factors = dict(params), {}, {}
        for path, param in params.items():
            es_class, key = self.es_classes[path], self._keys[path]
            if es_class == MM_PARAM:
                drawn = low_rank_factors(self.noiser, self._frozen, self._noiser_params, param, key, iterinfo)
                if drawn is not None:
                    factors[path] = drawn
            elif es_class == PARAM:
                noisy = self.noiser.get_noisy_standard(self._frozen, self._noiser_params, param, key, iterinfo)
                if noisy.ndim == param.ndim + 1:
                    values[path] = noisy
        matrices = [path for path, c in self.es_classes.items() if c == MM_PARAM]
        vectorized = len(factors) == len(matrices)
        generation = self._generation
        return Population(
            self.module,
            size=len(members),
            epoch=self.epoch,
            shared=shared,
            values=values,
            factors=factors if vectorized else None,
            member_routes=None if vectorized else self._member_routes(matrices, members),
            is_current=lambda: self._generation == generation,
        )

    def _functional_population(self, members: range, params: dict) -> FunctionalPopulation:
        """A :class:`FunctionalModule`'s members: its model's forward with the population ``iterinfo``."""
        generation, model = self._generation, self.module.model
        run = partial(model.forward, self.noiser, self._frozen, self._noiser_params, self.module.frozen_params,
                      nest(params), nest(self._keys), self.iterinfo(members))
        return FunctionalPopulation(run, size=len(members), epoch=self.epoch,
                                    is_current=lambda: self._generation == generation)

    def _paired_population(self, draws: engine.PairDraws | engine.DeferredDraws, params: dict) -> Population:
        """The population of the pair engine's ``draws``."""
        generation = self._generation
        return Population(
            self.module, size=2 * len(draws.pairs), epoch=self.epoch, shared=params,
            values={}, factors=None, member_routes=None, is_current=lambda: self._generation == generation,
            pair_noise=self._engine.forward_noise(draws, params, self._noiser_params["sigma"], self._linear_biases),
        )

    def _paired_update(self, draws: engine.PairDraws | engine.DeferredDraws, params: dict,
                       fitnesses: torch.Tensor) -> tuple[dict, dict]:
        """``(new noiser_params, new flat params)`` from the pair engine's gradients; under a
        sharded distributed update each rank computes its own parameters' gradients."""
        sigma = self._noiser_params["sigma"]
        if self._sharding is None:
            grads = self._engine.gradients(draws, params, fitnesses, sigma)
        else:
            def owned(paths):
                subset = self._engine.draw(self.epoch, draws.pairs, sigma, paths)
                return self._engine.gradients(subset, {path: params[path] for path in paths}, fitnesses, sigma)

            grads = self._sharding.gradients(owned, params)
        new_noiser_params, new_tree = _update.apply_solver(self._frozen, dict(self._noiser_params), nest(params),
                                                           nest(grads))
        return new_noiser_params, flatten_paths(new_tree)

    def _pairs(self, members: range) -> range | None:
        """The antithetic pairs ``members`` consists of, when the pair engine runs them."""
        if self._engine is None or members.start % 2 or len(members) % 2:
            return None
        return range(members.start // 2, members.stop // 2)

    def _members(self, members: range | None) -> range:
        if members is None:
            return range(self.population_size)
        if not isinstance(members, range) or members.step != 1:
            raise TypeError(f"members must be a contiguous range of thread ids, got {members!r}")
        if len(members) == 0 or members.start < 0 or members.stop > self.population_size:
            raise ValueError(
                f"members={members!r} must be a non-empty range inside range({self.population_size}), "
                "the population's thread ids"
            )
        return members

    def _member_routes(self, matrices: list[str], members: range) -> Callable[[int], dict]:
        """``index -> {path: MatrixRoute}`` calling the noiser's own ``do_mm`` / ``do_Tmm`` for
        thread id ``members.start + index`` with ``iterinfo = (epoch, thread_id)`` as Python ints."""
        frozen, noiser_params, epoch, noiser = self._frozen, self._noiser_params, self.epoch, self.noiser

        def routes(index: int) -> dict:
            iterinfo = (epoch, members.start + index)

            def route_for(path):
                key = self._keys[path]
                return MatrixRoute(
                    mm=lambda x, weight: noiser.do_mm(frozen, noiser_params, weight, key, iterinfo, x),
                    tmm=lambda x, weight: noiser.do_Tmm(frozen, noiser_params, weight, key, iterinfo, x),
                )

            return {path: route_for(path) for path in matrices}

        return routes

    def update(self, raw_fitness: torch.Tensor) -> dict:
        """Shape the raw fitness of the current epoch, update the parameters, advance the epoch.

        The raw scores go through the noiser's ``convert_fitnesses`` (fitness shaping), then one
        ``do_updates`` step writes the new parameters into :attr:`module` in place and advances
        the solver state; :attr:`epoch` then increases by one and every population built before
        becomes stale. Bad fitness raises before anything changes (its NaN/inf check
        synchronizes with the device once).

        Args:
            raw_fitness (torch.Tensor): floating tensor of shape ``(N,)`` on the trainer's
                device, one finite raw score per member of the current epoch (member ``i`` at
                index ``i``, thread id order), higher is better.

        Returns:
            dict: ``{"epoch": int, the epoch just evaluated; "fitness_mean", "fitness_max",
            "fitness_min": raw-score statistics; "update_norm": global L2 norm of the parameter
            change}``. The statistics are 0-d tensors on the trainer's device (read them with
            ``.item()``), of ``raw_fitness``'s dtype promoted to at least float32;
            ``update_norm`` is accumulated in float32 (float64 for float64 parameters).

        Raises:
            TypeError: ``raw_fitness`` is not a tensor, or not floating.
            ValueError: ``raw_fitness`` is not ``(N,)``, is on another device or holds a NaN or
                infinite score; or the noiser shapes N scores into a different count (e.g.
                ``"eggrollbs"`` with ``group_size != N``).
            RuntimeError: the module's parameters changed names, shapes or dtypes since the
                trainer was built.
        """
        raw = check_fitnesses(raw_fitness, self.population_size, self.device, name="fitness")
        pairs = self._pairs(range(self.population_size))
        if pairs is not None:
            # EGGROLL's convert_fitnesses without its second finiteness check (one sync fewer).
            fitnesses = standardize_unchecked(raw, self._frozen["group_size"])
        else:
            fitnesses = self.noiser.convert_fitnesses(self._frozen, self._noiser_params, raw)
        if fitnesses.numel() != self.population_size:
            raise ValueError(
                f"noiser {self.noiser.__name__} shaped {self.population_size} raw fitnesses into "
                f"{fitnesses.numel()} values, but the update needs one per member; for eggrollbs use "
                "population_size == group_size"
            )
        params = self._current_params()
        if pairs is not None:
            draws = self._engine.draw(self.epoch, pairs, self._noiser_params["sigma"])
            new_noiser_params, new_params = self._paired_update(draws, params, fitnesses)
        else:
            new_noiser_params, new_tree = self.noiser.do_updates(
                self._frozen, dict(self._noiser_params), nest(params), nest(self._keys), fitnesses,
                self.iterinfo(), nest(self.es_classes),
            )
            new_params = flatten_paths(new_tree)
        metrics = {"epoch": self.epoch, **update_metrics(raw, params, new_params)}
        self._write_params(new_params, params)
        self._noiser_params = new_noiser_params
        self.epoch += 1
        self._generation += 1
        return metrics

    def step(self, fitness_fn: Callable[[Population], torch.Tensor]) -> dict:
        """One ES epoch: ``raw = fitness_fn(self.population())``, then :meth:`update` ``(raw)``.

        Args:
            fitness_fn (Callable[[Population], torch.Tensor]): receives the callable
                :class:`Population` of all N members (``pop(x)`` runs them in one batched
                forward) and returns their raw fitness, a floating tensor of shape ``(N,)`` on
                the trainer's device, member ``i`` at index ``i``, higher is better.

        Returns:
            dict: :meth:`update`'s metrics (``epoch``, ``fitness_mean``, ``fitness_max``,
            ``fitness_min``, ``update_norm``).

        Raises:
            TypeError, ValueError: the fitness is rejected, as in :meth:`update`; nothing is
                updated.
            RuntimeError: the module's parameters changed names, shapes or dtypes since the
                trainer was built.
        """
        return self.update(fitness_fn(self.population()))

    def graphed_step(self, fitness_fn: Callable[[Population], torch.Tensor], *, warmup: int = 2) -> GraphedGeneration:
        """``step(fitness_fn)`` recorded as one CUDA graph: call the result once per generation.

        For the pair engine (``noiser="eggroll"`` or ``"reeggroll"``, even N) on CUDA; on any
        other device the result simply calls :meth:`step`. On CUDA this runs ``warmup`` eager
        generations, undoes their effects and records one generation, so the trainer is where
        it was when this returns. See :class:`eggroll_torch.nn.graphed.GraphedGeneration`.

        Args:
            fitness_fn (Callable[[Population], torch.Tensor]): as in :meth:`step`, and in
                addition graph-safe: it must run on the device only (no ``.item()``, no
                data-dependent shapes) and always read its inputs from the same tensors (refill
                them in place between calls to change the data).
            warmup (int): eager generations (>= 1) run before recording so kernels compile and
                cuBLAS workspaces exist. Default 2.

        Returns:
            GraphedGeneration: a callable; each call runs one generation and returns
            :meth:`step`'s metrics. It raises ``RuntimeError`` once the trainer was changed by
            anything else (:meth:`step`, :meth:`update`, :meth:`load_state_dict`).

        Raises:
            ValueError: ``warmup`` is not an int >= 1; or, on CUDA, the trainer does not run the
                pair engine (another noiser, or an odd N).
            TypeError: ``fitness_fn`` is not callable.
        """
        return GraphedGeneration(self, fitness_fn, warmup=warmup)

    def state_dict(self) -> dict:
        """Everything a resumed run needs to continue bit-identically.

        Holds only tensors, numbers, lists and dicts, so ``torch.save`` writes it and
        ``torch.load(path)`` (``weights_only=True``) reads it back. Tensors are copies: later
        steps do not change a saved state.

        Returns:
            dict: ``{"epoch": int, the next epoch; "params": {path: tensor}, the parameters with
            their shapes and dtypes; "noiser_state": list, the leaves of the noiser state
            (sigma and solver state) in :mod:`eggroll_torch.tree` order (a wrapped ``torch.optim`` optimizer as its
            ``state_dict()``); "es_key": torch.uint32 (2,); "keys": {path: torch.uint32 (2,)}}``
            (``(L, 2)`` for a layer-stacked leaf of a :class:`FunctionalModule`).
        """
        return {
            "epoch": self.epoch,
            "params": {path: p.detach().clone() for path, p in self._current_params().items()},
            "noiser_state": state.pack(self._noiser_params),
            "es_key": self.es_key.clone(),
            "keys": {path: k.clone() for path, k in self._keys.items()},
        }

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Restore a :meth:`state_dict`, in place: parameters, solver state, epoch and keys.

        Everything is validated before anything is written. Populations and graphed steps built
        before become stale.

        Args:
            state_dict (Mapping): a dict from :meth:`state_dict` of a trainer built with the same
                module architecture (parameter paths, shapes, dtypes), solver and noiser
                settings; its tensors may be on any device.

        Raises:
            TypeError: ``state_dict`` is not a mapping, or an entry has the wrong type or dtype.
            ValueError: an entry is missing, or its paths, shapes or leaf count differ from
                this trainer's.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"state_dict must be a dict from EggrollTrainer.state_dict(), got {type(state_dict).__name__}"
            )
        missing = {"epoch", "params", "noiser_state", "es_key", "keys"} - set(state_dict)
        if missing:
            raise ValueError(f"state_dict lacks {sorted(missing)}; pass a dict from EggrollTrainer.state_dict()")
        epoch = check_count("state_dict['epoch']", state_dict["epoch"], 0)
        params = _checked_tensors("params", state_dict["params"], self._signature)
        key_signature = {path: (k.shape, torch.uint32) for path, k in self._keys.items()}
        keys = _checked_tensors("keys", state_dict["keys"], key_signature)
        es_key = es_random.keys.check_keys(state_dict["es_key"], "state_dict['es_key']")
        noiser_leaves = state.check_packed(self._noiser_params, state_dict["noiser_state"])

        self._write_params(params)
        self._noiser_params = state.unpack(self._noiser_params, noiser_leaves)
        self._keys = {path: k.to(self.device, copy=True) for path, k in keys.items()}
        if self._engine is not None:
            self._engine.set_keys(self._keys)
        self.es_key = es_key.to(self.device, copy=True)
        self.epoch = epoch
        self._generation += 1

    def _current_params(self) -> dict[str, torch.Tensor]:
        params = _read_params(self.module)
        if {path: (p.shape, p.dtype) for path, p in params.items()} != self._signature:
            raise RuntimeError(
                "the module's parameters changed shape, dtype or names since the trainer was "
                "built; build a new EggrollTrainer for the changed module"
            )
        return params

    def _write_params(self, new_params: Mapping[str, torch.Tensor], current: dict | None = None) -> None:
        """Copies ``new_params`` into the module's parameters, or into ``current`` (what
        :meth:`_current_params` just returned: the same storage, without walking the module
        again)."""
        if current is None:
            current = {path: param for path, _, _, param in named_parameters_with_owner(self.module)}
        with torch.no_grad():
            param_writes.write(list(current.values()), [new_params[path] for path in current])


def _read_params(module: nn.Module) -> dict[str, torch.Tensor]:
    """``{path: detached parameter}``: the module's own storage, in ``named_parameters`` order."""
    return {path: p.detach() for path, _, _, p in named_parameters_with_owner(module)}


def _resolve_es_key(seed, es_key) -> torch.Tensor:
    if seed is not None and es_key is not None:
        raise ValueError(
            "give seed or es_key, not both: es_key is the key itself, seed builds one with random.key(seed)"
        )
    if es_key is None:
        return es_random.key(0 if seed is None else seed)
    es_random.keys.check_keys(es_key, "es_key")
    if es_key.shape != (2,):
        raise ValueError(f"es_key must be one key of shape (2,), got shape {tuple(es_key.shape)}")
    return es_key


def _check_parameters(module: nn.Module, device) -> None:
    params = [p for _, _, _, p in named_parameters_with_owner(module)]
    if not params:
        raise ValueError("module has no parameters, so there is nothing to evolve; pass a module with parameters")
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in params):
        raise ValueError("module has uninitialized (lazy) parameters; run one forward pass before building the trainer")
    devices = {p.device for p in params}
    if device is None and len(devices) > 1:
        raise ValueError(
            f"module's parameters are on several devices {sorted(map(str, devices))}; pass device= "
            "to move them all to one"
        )


def _checked_tensors(name: str, saved, signature: Mapping) -> dict[str, torch.Tensor]:
    if not isinstance(saved, Mapping) or set(saved) != set(signature):
        got = sorted(saved) if isinstance(saved, Mapping) else type(saved).__name__
        raise ValueError(
            f"state_dict[{name!r}] has entries {got} but this trainer's parameters are "
            f"{sorted(signature)}; load a state saved from the same architecture"
        )
    for path, (shape, dtype) in signature.items():
        tensor = saved[path]
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state_dict[{name!r}][{path!r}] must be a tensor, got {type(tensor).__name__}")
        if tensor.dtype != dtype:
            raise TypeError(
                f"state_dict[{name!r}][{path!r}] is {tensor.dtype} but the trainer's is {dtype}; "
                "cast the module or the state so they agree"
            )
        if tensor.shape != shape:
            raise ValueError(
                f"state_dict[{name!r}][{path!r}] has shape {tuple(tensor.shape)}, the trainer's "
                f"{tuple(shape)}; load a state saved from the same architecture"
            )
    return dict(saved)
