"""The adapter protocol: how the harness talks to one EGGROLL implementation.

An adapter wraps one backend (our JAX reference, our PyTorch port, upstream HyperscaleES, or a
third-party port) behind numpy-in / numpy-out operations. The harness generates every input once,
feeds the same arrays to every adapter and compares what comes back with the JAX reference.

Writing an adapter for a port
-----------------------------
Subclass :class:`Adapter` in one file, set ``name`` and ``capabilities``, implement the operations
the port has and leave the rest: an operation that is not overridden raises :class:`Unsupported`
and its checks are reported as skipped with the reason, never as failures. Run it with::

    python -m conformance run --backend mypackage.my_adapter:MyAdapter

(``module:Class`` or ``module:factory``; the class is instantiated with no arguments.)

Conventions shared by every operation
-------------------------------------
* Arrays are numpy. Float inputs are float32 unless a case says otherwise. Return copies (never
  views of the port's state) in exactly the dtype the reference would (the param's dtype): every
  output's dtype is compared with the reference's, and a mismatch fails that output ("dtype
  float32, expected bfloat16") however close its values, since a value left in the wrong dtype
  rounds differently from there on. bfloat16 inputs are ``ml_dtypes.bfloat16`` numpy arrays
  (ml_dtypes comes with jaxlib; without it those cases are skipped), and bfloat16 results are
  returned as such (for a torch tensor ``conformance.tolerances.to_numpy`` does it). An adapter
  that can only hand back float32 copies of bfloat16 results sets
  :attr:`Adapter.widens_bfloat16`; its float32 results are then accepted where the reference's
  are bfloat16, provided every value is a bfloat16 value exactly (a float32 value that is not
  fails as a dtype mismatch).
* A key is a ``uint32`` array of shape ``(*batch, 2)``: the two words ``jax.random.key_data``
  gives for a threefry2x32 key. Ports that do not reproduce JAX's PRNG do not declare
  :data:`JAX_RNG`; their noise rows are skipped and the update algebra is checked by handing
  them the reference's noise (see ``do_updates(noise=...)``).
* ``config`` is a :class:`~conformance.spec.NoiserConfig` (noiser name, sigma, rank,
  group_size, noise_reuse, freeze_nonlora, use_batched_update, solver).
* ``population`` is a :class:`~conformance.spec.Population`: ``epochs`` and ``thread_ids``,
  int32 ``(N,)``; member ``n`` is upstream's ``iterinfo = (epochs[n], thread_ids[n])``.
* Parameter trees are nested ``dict``s with ``str`` keys (see :mod:`conformance.trees`);
  ``es_map`` has the same structure with int leaves (0 PARAM, 1 MM_PARAM, 2 EMB_PARAM,
  3 EXCLUDED) and ``scan_map`` with tuple leaves (axes of stacked layers, ``()`` for none).
  Insertion order of the dicts is meaningful for the keys checks: do not sort them yourself
  unless your port does.

Operations (all optional, each guarded by a capability)
-------------------------------------------------------
``convert_fitnesses(config, raw)``                     raw ``(N,)`` -> shaped fitnesses
``lora_factors(config, key, shape, dtype, population)`` -> ``A (N, a, r)``, ``B (N, b, r)``
    as the noiser's forward uses them: sign and ``sigma / sqrt(rank)`` folded into ``A``.
``full_noise(config, key, shape, dtype, population)``   -> ``(N, *shape)`` with sign and sigma.
``sparse_noise(config, key, shape, dtype, population)`` -> ``values, idx_a, idx_b`` each ``(N, k)``.
``do_mm / do_Tmm(config, param, key, population, x)``   ``x (N, *batch, in)`` -> ``(N, *batch, out)``;
    ``population=None`` means no noise and ``x`` has no member axis.
``noisy_standard(config, param, key, population)``     -> ``(N, *shape)`` (``shape`` if None).
``tree_keys(params, base_key, scan_map)``              -> key tree (upstream ``simple_es_tree_key``).
``do_updates(config, params, es_map, keys, fitnesses, population, noise=None)``
    one ``Noiser.do_updates`` step from a freshly initialised solver; returns the new params.
    ``noise`` (ports without :data:`JAX_RNG`): ``{path: LeafNoise}`` with the reference's noise.
``optimizer_steps(solver, lr, params, grads)``          -> params after each of the gradient steps.
``mlp_trajectory(spec)``                               -> :class:`~conformance.spec.Trajectory`.
``api_contract(config, params, keys, es_map, fitnesses, population, x)`` -> upstream's API
    contract as integer arrays (:mod:`conformance.adapters._api_contract`).
``rl_policy(config, policy, key, tree_key, population, obs, actions, sample_keys)`` -> the
    ``models.rl`` actor-critic's params and outputs (its distribution's parameters, log-probs,
    samples, critic).
``rwkv7 / qrwkv6(config, model, checkpoint, tree_key, population, calls, fitnesses)`` -> a
    language model's logits and recurrent state per call, then its params after ES updates.
"""
from __future__ import annotations

import difflib
from abc import ABC
from dataclasses import dataclass, field

import numpy as np

from ..spec import NOISERS, LeafNoise, NoiserConfig, Population, SolverSpec, Trajectory, TrajectorySpec

# Capabilities an adapter may declare in ``capabilities``; a check whose requirements are not all
# declared is skipped, not failed. Per-noiser and per-dtype support are spelled
# ``noiser:<name>`` and ``dtype:<name>`` (see noiser_capability / dtype_capability).
# JAX_RNG: the port reproduces JAX's threefry noise bit for bit, so its noise is compared with
# the reference's; without it noise-dependent checks are injected (INJECT_NOISE) or law-only.
# INJECT_NOISE: do_updates accepts the reference's noise through ``noise=``.
# SCAN_MAP: tree_keys and do_updates handle leaves stacked along scan_map axes.
# BATCHED_UPDATE: do_updates honours NoiserConfig.use_batched_update.
# The others name the operation they gate: CONVERT_FITNESSES, NOISE (lora_factors, full_noise),
# SPARSE_NOISE (sparse_noise), FORWARD (do_mm, do_Tmm, noisy_standard), TREE_KEYS, UPDATES,
# OPTIMIZER (optimizer_steps), TRAJECTORY (mlp_trajectory), RL_POLICY (rl_policy), RWKV7 (rwkv7),
# QRWKV6 (qrwkv6), LLM_LOOP (llm_sampling, llm_evolution, llm_task_fitness).
CONVERT_FITNESSES = "convert_fitnesses"
JAX_RNG = "jax_rng"
NOISE = "noise"
SPARSE_NOISE = "sparse_noise"
FORWARD = "forward"
TREE_KEYS = "tree_keys"
SCAN_MAP = "scan_map"
UPDATES = "do_updates"
INJECT_NOISE = "inject_noise"
BATCHED_UPDATE = "batched_update"
OPTIMIZER = "optimizer"
TRAJECTORY = "trajectory"
API = "api"
RL_POLICY = "rl_policy"
RWKV7 = "rwkv7"
QRWKV6 = "qrwkv6"
LLM_LOOP = "llm_loop"


# What each operation capability promises: the adapter methods a check gated by it may call.
# JAX_RNG, INJECT_NOISE, SCAN_MAP and BATCHED_UPDATE qualify operations rather than add any.
CAPABILITY_OPERATIONS = {
    CONVERT_FITNESSES: ("convert_fitnesses",),
    NOISE: ("lora_factors", "full_noise"),
    SPARSE_NOISE: ("sparse_noise",),
    FORWARD: ("do_mm", "do_Tmm", "noisy_standard"),
    TREE_KEYS: ("tree_keys",),
    UPDATES: ("do_updates",),
    OPTIMIZER: ("optimizer_steps",),
    TRAJECTORY: ("mlp_trajectory",),
    API: ("api_contract",),
    RL_POLICY: ("rl_policy",),
    RWKV7: ("rwkv7",),
    QRWKV6: ("qrwkv6",),
    LLM_LOOP: ("llm_sampling", "llm_evolution", "llm_task_fitness"),
    JAX_RNG: (),
    INJECT_NOISE: (),
    SCAN_MAP: (),
    BATCHED_UPDATE: (),
}
DTYPE_NAMES = ("float32", "bfloat16", "float16")


def known_capabilities() -> frozenset:
    """Every capability string a check can ask for.

    Returns:
        frozenset[str]: the constants of this module, one :func:`noiser_capability` per noiser
        of :data:`conformance.spec.NOISERS` and one :func:`dtype_capability` per dtype of
        :data:`DTYPE_NAMES`.
    """
    return frozenset(CAPABILITY_OPERATIONS) | {noiser_capability(n) for n in NOISERS} \
        | {dtype_capability(d) for d in DTYPE_NAMES}


def unknown_capabilities(capabilities) -> list[str]:
    """One message per entry of ``capabilities`` that no check can ask for (a typo would
    otherwise skip every check that needs the intended name), with the nearest known names.

    Args:
        capabilities (Iterable[str]): an adapter's declared capabilities.

    Returns:
        list[str]: empty when all are known; else e.g. ``"'do_update' is not a capability (did
        you mean 'do_updates'?)"``.
    """
    known = known_capabilities()
    messages = []
    for capability in sorted(set(capabilities) - known, key=str):
        near = difflib.get_close_matches(str(capability), sorted(known), n=2, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(n) for n in near)}?)" if near else \
            " (see conformance.adapters.base.CAPABILITY_OPERATIONS)"
        messages.append(f"{capability!r} is not a capability{hint}")
    return messages


def implemented_operations(adapter) -> frozenset:
    """The operations of :class:`Adapter` that ``adapter``'s class overrides.

    Args:
        adapter (Adapter): any adapter instance.

    Returns:
        frozenset[str]: names from :data:`CAPABILITY_OPERATIONS` whose method is not the base
        class's (which raises :class:`Unsupported`).
    """
    operations = {op for ops in CAPABILITY_OPERATIONS.values() for op in ops}
    return frozenset(op for op in operations if getattr(type(adapter), op, None) is not getattr(Adapter, op))


def noiser_capability(name: str) -> str:
    """The capability that declares support for one noiser.

    Args:
        name (str): a noiser name of :data:`conformance.spec.NOISERS` (``"eggroll"``,
            ``"open_es"``, ...).

    Returns:
        str: ``"noiser:<name>"``, to put in :attr:`Adapter.capabilities`.
    """
    return f"noiser:{name}"


def dtype_capability(name: str) -> str:
    """The capability that declares support for parameters of one dtype.

    Args:
        name (str): a numpy dtype name as the cases spell it: ``"float32"``, ``"bfloat16"`` or
            ``"float16"``.

    Returns:
        str: ``"dtype:<name>"``, to put in :attr:`Adapter.capabilities`.
    """
    return f"dtype:{name}"


class Unsupported(Exception):
    """Raised by an adapter for an operation or input its backend does not have (reported as skip)."""


@dataclass(frozen=True)
class BackendInfo:
    """What a report says about a backend: name, version, device and library versions.

    Args:
        name (str): the backend's name, normally the adapter's :attr:`Adapter.name`.
        version (str): the implementation's version (a package version or a commit).
        device (str): where it computes, e.g. ``"cpu"`` or ``"cuda:NVIDIA H100"``.
        libraries (dict): ``{library: version string}`` of the stack it runs on. Default empty.
        notes (str): free text shown with the backend, e.g. why its noise is not comparable.
            Default ``""``.
    """

    name: str
    version: str
    device: str
    libraries: dict = field(default_factory=dict)
    notes: str = ""

    def to_json(self) -> dict:
        """The info as JSON-able data, as reports store it.

        Returns:
            dict: ``{"name", "version", "device", "libraries", "notes"}`` with the fields'
            values (``libraries`` copied).
        """
        return {"name": self.name, "version": self.version, "device": self.device,
                "libraries": dict(self.libraries), "notes": self.notes}


class Adapter(ABC):
    """Base class of every backend adapter; see the module docstring for the protocol.

    The harness instantiates an adapter with no arguments. Every operation here raises
    :class:`Unsupported`; a subclass overrides the ones its backend has and declares them in
    ``capabilities``. An adapter must not modify its inputs: the harness hands the same arrays
    to every backend.

    Attributes:
        name (str): the backend's name in reports and on the command line.
        capabilities (frozenset[str]): the capability constants of this module, plus
            :func:`noiser_capability` and :func:`dtype_capability` entries, that the adapter
            supports; checks needing anything else are skipped.
        widens_bfloat16 (bool): the adapter hands bfloat16 results back as float32 copies of
            their values. Then, and only then, a float32 output is accepted where the
            reference's is bfloat16, and only if every value is exactly a bfloat16 value.
            Default ``False``: the dtype must be the reference's.
    """

    name: str = "unnamed"
    capabilities: frozenset = frozenset()
    widens_bfloat16: bool = False

    def info(self) -> BackendInfo:
        """Name, version and device of the backend (shown in every report).

        Returns:
            BackendInfo: ``name`` and ``"unknown"`` version and device unless overridden.
        """
        return BackendInfo(self.name, "unknown", "unknown")

    def supports(self, capability: str) -> bool:
        """Whether the adapter declares ``capability``.

        Args:
            capability (str): a capability constant of this module, or a
                :func:`noiser_capability` / :func:`dtype_capability` string.

        Returns:
            bool: ``capability in self.capabilities``.
        """
        return capability in self.capabilities

    def _missing(self, op: str):
        raise Unsupported(f"{self.name} does not implement {op}")

    def convert_fitnesses(self, config: NoiserConfig, raw: np.ndarray) -> np.ndarray:
        """The noiser's ``convert_fitnesses``: shaped fitnesses from raw scores.

        Args:
            config (NoiserConfig): the noiser and its ``init_noiser`` arguments.
            raw (np.ndarray): float32 ``(N,)`` raw scores, member ``n`` at index ``n``.

        Returns:
            np.ndarray: float ``(N,)`` shaped fitnesses (``eggrollbs``: ``(G,)`` per-direction
            fitnesses for ``N = Q*G``).

        Raises:
            Unsupported: the backend does not implement this operation.
            Exception: any error for inputs the noiser rejects (e.g. ``N`` not a multiple of
                ``group_size``); the rejection itself is what some checks expect.
        """
        self._missing("convert_fitnesses")

    def lora_factors(self, config: NoiserConfig, key: np.ndarray, shape: tuple, dtype: str,
                     population: Population) -> tuple[np.ndarray, np.ndarray]:
        """The low-rank factors of a matrix leaf, as the noiser's forward uses them.

        Args:
            config (NoiserConfig): the noiser and its ``init_noiser`` arguments.
            key (np.ndarray): uint32 ``(2,)``, the leaf's threefry key words.
            shape (tuple): ``(a, b)``, the matrix's shape.
            dtype (str): numpy dtype name of the matrix (``"float32"``, ``"bfloat16"``,
                ``"float16"``).
            population (Population): ``epochs`` and ``thread_ids``, int32 ``(N,)``; member ``n``
                is ``iterinfo = (epochs[n], thread_ids[n])``.

        Returns:
            tuple[np.ndarray, np.ndarray]: ``A (N, a, r)`` with the member's sign and
            ``sigma / sqrt(rank)`` folded in and ``B (N, b, r)``, both of ``dtype``; member
            ``n``'s perturbation is ``A[n] @ B[n].T``.

        Raises:
            Unsupported: the backend does not implement this operation, or not for these
                inputs (reported as a skip).
        """
        self._missing("lora_factors")

    def full_noise(self, config: NoiserConfig, key: np.ndarray, shape: tuple, dtype: str,
                   population: Population) -> np.ndarray:
        """Full-rank noise of a ``PARAM`` leaf (of any leaf under ``open_es``).

        Args:
            config (NoiserConfig): the noiser and its ``init_noiser`` arguments.
            key (np.ndarray): uint32 ``(2,)``, the leaf's threefry key words.
            shape (tuple): the leaf's shape.
            dtype (str): numpy dtype name of the leaf.
            population (Population): ``epochs`` and ``thread_ids``, int32 ``(N,)``; member ``n``
                is ``iterinfo = (epochs[n], thread_ids[n])``.

        Returns:
            np.ndarray: ``(N, *shape)`` of ``dtype``, member ``n``'s additive perturbation with
            its sign and sigma included.

        Raises:
            Unsupported: the backend does not implement this operation, or not for these
                inputs (reported as a skip).
        """
        self._missing("full_noise")

    def sparse_noise(self, config: NoiserConfig, key: np.ndarray, shape: tuple, dtype: str,
                     population: Population) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``sparse`` noiser's perturbation of a matrix leaf, as coordinates and values.

        Args:
            config (NoiserConfig): the noiser and its ``init_noiser`` arguments.
            key (np.ndarray): uint32 ``(2,)``, the leaf's threefry key words.
            shape (tuple): ``(a, b)``, the matrix's shape.
            dtype (str): numpy dtype name of the matrix.
            population (Population): ``epochs`` and ``thread_ids``, int32 ``(N,)``; member ``n``
                is ``iterinfo = (epochs[n], thread_ids[n])``.

        Returns:
            tuple[np.ndarray, np.ndarray, np.ndarray]: ``values (N, k)`` of ``dtype`` (sign and
            sigma included), ``idx_a (N, k)`` row and ``idx_b (N, k)`` column indices (int32);
            repeated coordinates add up. Upstream draws ``k = max(a, b)``.

        Raises:
            Unsupported: the backend does not implement this operation, or not for these
                inputs (reported as a skip).
        """
        self._missing("sparse_noise")

    def do_mm(self, config: NoiserConfig, param: np.ndarray, key: np.ndarray,
              population: Population | None, x: np.ndarray) -> np.ndarray:
        """Upstream's ``do_mm``: ``x @ (param + noise_n).T`` for every member ``n``.

        Args:
            config (NoiserConfig): the noiser and its ``init_noiser`` arguments.
            param (np.ndarray): the matrix, ``(out, in)``.
            key (np.ndarray): uint32 ``(2,)``, the leaf's threefry key words.
            population (Population | None): the members (see :meth:`lora_factors`), or
                ``None`` for the unperturbed product.
            x (np.ndarray): ``(N, *batch, in)``, member ``n``'s input at ``x[n]``; without a
                population ``(*batch, in)``.

        Returns:
            np.ndarray: ``(N, *batch, out)`` (``(*batch, out)`` without a population) of
            ``param``'s dtype.

        Raises:
            Unsupported: the backend does not implement this operation, or not for these
                inputs (reported as a skip).
        """
        self._missing("do_mm")

    def do_Tmm(self, config: NoiserConfig, param: np.ndarray, key: np.ndarray,
               population: Population | None, x: np.ndarray) -> np.ndarray:
        """Upstream's ``do_Tmm``: ``x @ (param + noise_n)`` for every member ``n``.

        Args:
            config (NoiserConfig): the noiser and its ``init_noiser`` arguments.
            param (np.ndarray): the matrix stored transposed, ``(in, out)``.
            key (np.ndarray): uint32 ``(2,)``, the leaf's threefry key words.
            population (Population | None): the members (see :meth:`lora_factors`), or
                ``None`` for the unperturbed product.
            x (np.ndarray): ``(N, *batch, in)``, member ``n``'s input at ``x[n]``; without a
                population ``(*batch, in)``.

        Returns:
            np.ndarray: ``(N, *batch, out)`` (``(*batch, out)`` without a population) of
            ``param``'s dtype.

        Raises:
            Unsupported: the backend does not implement this operation, or not for these
                inputs (reported as a skip).
        """
        self._missing("do_Tmm")

    def noisy_standard(self, config: NoiserConfig, param: np.ndarray, key: np.ndarray,
                       population: Population | None) -> np.ndarray:
        """Upstream's ``get_noisy_standard``: ``param`` plus each member's full-rank noise.

        Args:
            config (NoiserConfig): the noiser and its ``init_noiser`` arguments.
            param (np.ndarray): the leaf, any shape.
            key (np.ndarray): uint32 ``(2,)``, the leaf's threefry key words.
            population (Population | None): the members (see :meth:`lora_factors`), or
                ``None`` for the unperturbed leaf.

        Returns:
            np.ndarray: ``(N, *param.shape)`` of ``param``'s dtype, member ``n``'s perturbed
            value at index ``n``; ``param`` itself without a population.

        Raises:
            Unsupported: the backend does not implement this operation, or not for these
                inputs (reported as a skip).
        """
        self._missing("noisy_standard")

    def tree_keys(self, params: dict, base_key: np.ndarray, scan_map: dict) -> dict:
        """One key per leaf, as upstream's ``simple_es_tree_key``.

        Args:
            params (dict): the parameter tree; only its structure, key order and leaf shapes
                matter.
            base_key (np.ndarray): uint32 ``(2,)``, the key split over the leaves.
            scan_map (dict): same structure as ``params`` with tuple leaves: the axes along
                which a leaf is stacked (its key is split again, recursively, once per index),
                ``()`` for none.

        Returns:
            dict: a tree shaped like ``params`` whose leaves are uint32 key words:
            ``(2,)``, or ``(*sizes of the scan axes, 2)`` for a stacked leaf.

        Raises:
            Unsupported: the backend does not implement this operation, or not for these
                inputs (reported as a skip).
        """
        self._missing("tree_keys")

    def do_updates(self, config: NoiserConfig, params: dict, es_map: dict, keys: dict,
                   fitnesses: np.ndarray, population: Population,
                   noise: dict[str, LeafNoise] | None = None) -> dict:
        """New params after one ``do_updates`` step with a freshly initialised solver.

        The noiser is initialised with ``init_noiser(params, config...)`` and its
        ``do_updates`` applied once with ``iterinfo`` = ``population``.

        Args:
            config (NoiserConfig): the noiser and its ``init_noiser`` arguments.
            params (dict): the parameter tree (numpy leaves).
            es_map (dict): same structure, int leaves (0 PARAM, 1 MM_PARAM, 2 EMB_PARAM,
                3 EXCLUDED).
            keys (dict): same structure, uint32 key leaves as :meth:`tree_keys` returns them.
            fitnesses (np.ndarray): float32 ``(N,)`` already shaped fitnesses, member ``n`` at
                index ``n``.
            population (Population): ``epochs`` and ``thread_ids``, int32 ``(N,)``; member ``n``
                is ``iterinfo = (epochs[n], thread_ids[n])``.
            noise (dict[str, LeafNoise] | None): for ports without :data:`JAX_RNG` that
                declare :data:`INJECT_NOISE`: ``{path: LeafNoise}`` (paths ``"a/b"`` as
                :mod:`conformance.trees` joins them) with the reference's noise of every leaf,
                to use instead of drawing any. Default ``None``: draw it.

        Returns:
            dict: the updated tree, same structure as ``params``, each leaf of its input's
            shape and dtype.

        Raises:
            Unsupported: the backend does not implement this operation, or not for these
                inputs (reported as a skip).
        """
        self._missing("do_updates")

    def optimizer_steps(self, solver: SolverSpec, lr: float, params: dict, grads: list[dict]) -> list[dict]:
        """Apply the solver to each gradient tree in turn; the params after every step.

        Args:
            solver (SolverSpec): the optax solver name and its keyword arguments.
            lr (float): learning rate.
            params (dict): the initial parameter tree; the solver state starts from it.
            grads (list[dict]): gradient trees shaped like ``params``, applied in order as
                optax's ``update`` followed by ``apply_updates`` (a descent step).

        Returns:
            list[dict]: ``len(grads)`` parameter trees, entry ``i`` after ``grads[0..i]``.

        Raises:
            Unsupported: the backend does not implement this operation, or not for these
                inputs (reported as a skip).
        """
        self._missing("optimizer_steps")

    def mlp_trajectory(self, spec: TrajectorySpec) -> Trajectory:
        """Run the end-to-end MLP example and return every epoch's params and scores.

        Args:
            spec (TrajectorySpec): seed, epochs, population, model and ES settings.

        Returns:
            Trajectory: ``params``, the ``num_epochs + 1`` parameter trees (initial, then after
            every epoch), and ``scores``, the ``(num_epochs, num_envs)`` raw fitnesses.

        Raises:
            Unsupported: the backend does not implement this operation, or not for these
                inputs (reported as a skip).
        """
        self._missing("mlp_trajectory")

    def api_contract(self, config: NoiserConfig, params: dict, keys: dict, es_map: dict, fitnesses: np.ndarray,
                     population: Population, x: np.ndarray) -> dict:
        """Upstream's API contract as the library shows it (for libraries with upstream's API).

        Args:
            config (NoiserConfig): the noiser and its ``init_noiser`` arguments (solver adam).
            params (dict): ``{"b": (3,), "w": (3, 2)}`` float32 leaves.
            keys (dict): same structure, uint32 ``(2,)`` key words.
            es_map (dict): same structure, int leaves.
            fitnesses (np.ndarray): float32 ``(N,)`` shaped fitnesses.
            population (Population): the members of the ``do_updates`` call.
            x (np.ndarray): ``(2,)`` input of a one-member ``do_mm`` with ``iterinfo`` given as
                the Python ints ``(epochs[0], thread_ids[-1])``.

        Returns:
            dict: ``{name: integer or float array}`` (see
            :func:`conformance.adapters._api_contract.describe`).

        Raises:
            Unsupported: the backend does not implement this operation.
        """
        self._missing("api_contract")

    def rl_policy(self, config: NoiserConfig, policy: dict, key: np.ndarray, tree_key: np.ndarray,
                  population: Population | None, obs: np.ndarray, actions: np.ndarray,
                  sample_keys: np.ndarray) -> dict:
        """Upstream's ``models.rl.ActorCriticMLP``: init, forward and its action distribution.

        Args:
            config (NoiserConfig): the noiser and its ``init_noiser`` arguments.
            policy (dict): ``{"obs": space, "act": space, "n_embd", "n_layers", "use_bias",
                "activation", "have_critic", "dtype"}``; a space is ``["discrete", n]`` (gymnax
                ``Discrete(n)``) or ``["box", shape]`` (a float32 ``Box(-1, 1, shape)``).
            key (np.ndarray): uint32 ``(2,)``, the ``rand_init`` key.
            tree_key (np.ndarray): uint32 ``(2,)``, the base key of ``simple_es_tree_key``.
            population (Population | None): one member per observation; ``None``: unperturbed.
            obs (np.ndarray): ``(M, size)`` float (a Box flattened) or ``(M,)`` int32 observations.
            actions (np.ndarray): ``(M, size)`` float32 or ``(M,)`` int32 actions to score.
            sample_keys (np.ndarray): uint32 ``(M, 2)``, one ``sample(seed=...)`` key per
                observation, as ``jax.vmap`` over the observations would use them.

        Returns:
            dict: ``params/<path>`` for every leaf of the initial params; ``log_prob (M,)``,
            ``sample`` (``(M,)`` int32 or ``(M, size)`` float32) and, for a discrete action space,
            the normalised ``logits (M, n)``, else ``mean`` and ``std`` ``(M, size)`` float32;
            ``critic (M, 1)`` with a critic.

        Raises:
            Unsupported: the backend does not implement this operation (or lacks its packages).
        """
        self._missing("rl_policy")

    def rwkv7(self, config: NoiserConfig, model: dict, checkpoint: dict, tree_key: np.ndarray,
              population: Population | None, calls: list, fitnesses: list) -> dict:
        """Upstream's ``models.llm.rwkv7``: a checkpoint loaded, run over calls carrying the
        recurrent state, then ES updates through its ``es_map`` / ``scan_map``.

        Args:
            config (NoiserConfig): the noiser and its ``init_noiser`` arguments.
            model (dict): ``{"variant": "BaseRWKV" | "ScanRWKV" | "AssociativeScanRWKV" |
                "FastRWKV", "dtype": "float32" | "bfloat16"}``.
            checkpoint (dict): ``{official .pth key: float32 array}``, read by the variant's
                ``load_from_torch(state_dict, None, dtype)``.
            tree_key (np.ndarray): uint32 ``(2,)``, the base key of ``simple_es_tree_key``.
            population (Population | None): the members of every call and update (vmapped as
                upstream does); ``None``: one unperturbed stream (``iterinfo=None``).
            calls (list[dict]): in order, each ``{"tokens": int array (T,) or (N, T), "length":
                int | None, "new_starts": bool (T,) | None}``; the first starts from
                ``default_state``, each later one from the previous call's state.
            fitnesses (list[np.ndarray]): raw ``(N,)`` scores of successive epochs; epoch ``e``
                runs ``convert_fitnesses`` and ``do_updates`` with ``iterinfo = (population.epochs
                + e, population.thread_ids)`` on the previous epoch's params and state.

        Returns:
            dict: ``logits/<i>`` (``([N,] T, V)``) and ``state/<i>`` (``([N,] L, 2 + S, C)``) per
            call; ``epoch<e>/<path>`` for every params leaf after epoch ``e``'s update.

        Raises:
            Unsupported: the backend does not implement this operation.
        """
        self._missing("rwkv7")

    def qrwkv6(self, config: NoiserConfig, model: dict, checkpoint: dict, tree_key: np.ndarray,
               population: Population | None, calls: list, fitnesses: list) -> dict:
        """Upstream's ``models.llm.qrwkv6``, driven as :meth:`rwkv7` drives RWKV-7.

        Args:
            config (NoiserConfig): the noiser and its ``init_noiser`` arguments.
            model (dict): ``{"variant": "BaseRWKV" | "FastRWKV", "dtype": "float32" | "bfloat16",
                "head_size": int}``; ``{"head_size": ...}`` is the model config that
                ``load_from_torch`` and ``default_state`` take (QRWKV6 reads its head size from
                there, not from the checkpoint).
            checkpoint (dict): ``{Hugging Face RWKV6Qwen2ForCausalLM key: float32 array}``, read by
                the variant's ``load_from_torch(state_dict, {"head_size": ...}, dtype)``.
            tree_key (np.ndarray): as for :meth:`rwkv7`.
            population (Population | None): as for :meth:`rwkv7`.
            calls (list[dict]): as for :meth:`rwkv7`.
            fitnesses (list[np.ndarray]): as for :meth:`rwkv7`.

        Returns:
            dict: ``logits/<i>`` (``([N,] T, V)``) and ``state/<i>`` (``([N,] L, 1 + S, C)``) per
            call; ``epoch<e>/<path>`` for every params leaf after epoch ``e``'s update.

        Raises:
            Unsupported: the backend does not implement this operation.
        """
        self._missing("qrwkv6")

    def llm_sampling(self, keys: np.ndarray, logits: np.ndarray, dtype: str, temperature: float) -> dict:
        """The LLM loop's token sampling (``llm.sample_token``), one key per row.

        Args:
            keys (np.ndarray): uint32 ``(B, 2)`` key words.
            logits (np.ndarray): float32 ``(B, V)``, cast to ``dtype`` before sampling.
            dtype (str): ``"float32"`` or ``"bfloat16"``.
            temperature (float): 0 is greedy; otherwise ``categorical(key, logits / temperature)``.

        Returns:
            dict: ``tokens`` ``(B,)`` int32.

        Raises:
            Unsupported: the backend does not implement this operation.
        """
        self._missing("llm_sampling")

    def llm_evolution(self, config: dict, model: dict, checkpoint: dict, task: str, epochs: int) -> dict:
        """The LLM evolution loop (``llm.Evolution``) on an RWKV-7 and a toy bandit task.

        Args:
            config (dict): ``EvolutionConfig`` fields as keywords.
            model (dict): ``{"variant": an RWKV-7 variant, "dtype": "float32" | "bfloat16"}``.
            checkpoint (dict): ``{official .pth key: float32 array}``, as for :meth:`rwkv7`.
            task (str): a key of ``environments.llm_bandits.all_tasks`` that needs no tokenizer.
            epochs (int): 0: only epoch 0's generation with the initial params; else that many
                epochs of ``single_epoch``.

        Returns:
            dict: ``tokens/epoch<e>`` ``(N, T)`` int32 per epoch; with ``epochs > 0`` also
            ``fitness/epoch<e>`` ``(N,)`` float32 and ``params/epoch<e>/<path>`` after each update.

        Raises:
            Unsupported: the backend does not implement this operation.
        """
        self._missing("llm_evolution")

    def llm_task_fitness(self, task: str, indices: np.ndarray, tokens: np.ndarray) -> dict:
        """A bandit task's prompts and rewards for fixed generations.

        Args:
            task (str): a key of ``environments.llm_bandits.all_tasks`` that needs no tokenizer.
            indices (np.ndarray): int32 ``(B,)`` prompt indices.
            tokens (np.ndarray): int32 ``(B, T)`` generations.

        Returns:
            dict: ``prompts`` ``(B, T)`` int32 and ``fitness`` ``(B,)`` float32.

        Raises:
            Unsupported: the backend does not implement this operation.
        """
        self._missing("llm_task_fitness")
