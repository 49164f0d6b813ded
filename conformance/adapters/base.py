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
* Arrays are numpy. Float inputs are float32 unless a case says otherwise; return the dtype the
  reference would (the param's dtype). bfloat16 inputs are ``ml_dtypes.bfloat16`` numpy arrays
  (ml_dtypes comes with jaxlib; without it those cases are skipped); return bfloat16 results as
  such or as their exact float32 values.
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
"""
from __future__ import annotations

from abc import ABC
from dataclasses import dataclass, field

import numpy as np

from ..spec import LeafNoise, NoiserConfig, Population, SolverSpec, Trajectory, TrajectorySpec

# Capabilities an adapter may declare. Per-noiser and per-dtype support are spelled
# ``noiser:<name>`` and ``dtype:<name>``.
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


def noiser_capability(name: str) -> str:
    return f"noiser:{name}"


def dtype_capability(name: str) -> str:
    return f"dtype:{name}"


class Unsupported(Exception):
    """Raised by an adapter for an operation or input its backend does not have (reported as skip)."""


@dataclass(frozen=True)
class BackendInfo:
    """What a report says about a backend: name, version, device and library versions."""

    name: str
    version: str
    device: str
    libraries: dict = field(default_factory=dict)
    notes: str = ""

    def to_json(self) -> dict:
        return {"name": self.name, "version": self.version, "device": self.device,
                "libraries": dict(self.libraries), "notes": self.notes}


class Adapter(ABC):
    """Base class of every backend adapter; see the module docstring for the protocol."""

    name: str = "unnamed"
    capabilities: frozenset = frozenset()

    def info(self) -> BackendInfo:
        """Name, version and device of the backend (shown in every report)."""
        return BackendInfo(self.name, "unknown", "unknown")

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities

    def _missing(self, op: str):
        raise Unsupported(f"{self.name} does not implement {op}")

    def convert_fitnesses(self, config: NoiserConfig, raw: np.ndarray) -> np.ndarray:
        """Shaped fitnesses from raw scores ``(N,)`` (``eggrollbs``: ``(G,)`` for ``N = Q*G``)."""
        self._missing("convert_fitnesses")

    def lora_factors(self, config: NoiserConfig, key: np.ndarray, shape: tuple, dtype: str,
                     population: Population) -> tuple[np.ndarray, np.ndarray]:
        """``A (N, a, r)`` with sign and ``sigma/sqrt(rank)`` folded in, ``B (N, b, r)``."""
        self._missing("lora_factors")

    def full_noise(self, config: NoiserConfig, key: np.ndarray, shape: tuple, dtype: str,
                   population: Population) -> np.ndarray:
        """Full-rank noise ``(N, *shape)`` of a ``PARAM`` leaf, sign and sigma included."""
        self._missing("full_noise")

    def sparse_noise(self, config: NoiserConfig, key: np.ndarray, shape: tuple, dtype: str,
                     population: Population) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``sparse`` noiser's ``values (N, k)``, ``idx_a (N, k)``, ``idx_b (N, k)``."""
        self._missing("sparse_noise")

    def do_mm(self, config: NoiserConfig, param: np.ndarray, key: np.ndarray,
              population: Population | None, x: np.ndarray) -> np.ndarray:
        """``x @ param.T`` plus each member's perturbation; ``param`` is ``(out, in)``."""
        self._missing("do_mm")

    def do_Tmm(self, config: NoiserConfig, param: np.ndarray, key: np.ndarray,
               population: Population | None, x: np.ndarray) -> np.ndarray:
        """``x @ param`` plus each member's perturbation; ``param`` is ``(in, out)``."""
        self._missing("do_Tmm")

    def noisy_standard(self, config: NoiserConfig, param: np.ndarray, key: np.ndarray,
                       population: Population | None) -> np.ndarray:
        """``param`` plus each member's full noise: ``(N, *shape)``; ``param`` itself if None."""
        self._missing("noisy_standard")

    def tree_keys(self, params: dict, base_key: np.ndarray, scan_map: dict) -> dict:
        """One key per leaf (split again along scanned axes), as upstream's ``simple_es_tree_key``."""
        self._missing("tree_keys")

    def do_updates(self, config: NoiserConfig, params: dict, es_map: dict, keys: dict,
                   fitnesses: np.ndarray, population: Population,
                   noise: dict[str, LeafNoise] | None = None) -> dict:
        """New params after one ``do_updates`` step with a freshly initialised solver."""
        self._missing("do_updates")

    def optimizer_steps(self, solver: SolverSpec, lr: float, params: dict, grads: list[dict]) -> list[dict]:
        """Apply the solver to each gradient tree in turn; the params after every step."""
        self._missing("optimizer_steps")

    def mlp_trajectory(self, spec: TrajectorySpec) -> Trajectory:
        """Run the end-to-end MLP example and return every epoch's params and scores."""
        self._missing("mlp_trajectory")
