"""One epoch's population: N perturbed copies of a module, run as one batched forward.

All noise of the epoch is drawn when the population is built, by the functional layer, one
vectorized call per parameter for all N members (the same calls the update makes, so the forward
sees exactly the noise the update credits):

- ``MM_PARAM`` under a low-rank noiser (EGGROLL and its variants): factors ``A`` ``(N, out, r)``
  and ``B`` ``(N, in, r)`` from the noiser's ``get_lora_update_params``. Memory per layer is
  ``O(N * r * (out + in))``; no ``(N, out, in)`` tensor is ever formed.
- ``PARAM``: the noiser's ``get_noisy_standard``, ``(N, *shape)`` perturbed values
  (just the parameter when unperturbed, e.g. ``freeze_nonlora``).
- ``EMB_PARAM``, ``EXCLUDED``: the parameter itself, shared by all members.

Under EGGROLL with whole antithetic pairs the trainer's pair engine (:mod:`.engine`) draws the
noise instead, once per pair and bit for bit the functional layer's; every parameter then stays
shared and the routing applies each member's noise where the module uses it.

Calling the population runs the module once under ``torch.func.vmap`` over members with
``torch.func.functional_call``: every member sees its own unbatched parameters and inputs, so
any module code works unchanged (``B, T, C = x.shape`` included). Every product with an
``MM_PARAM`` matrix is routed (:mod:`.routing`) to ``x @ W.T + (x @ B_i) @ A_i.T + b_i`` (or its
``x @ W`` form), which vmap turns into one shared ``(rows, in) @ (in, out)`` matmul plus two
batched matmuls through the rank dimension. A pair-engine population of a plain
``nn.Sequential`` of ``nn.Linear`` layers and elementwise activations (an MLP) calls those
population kernels directly instead, without vmap (``_chain_forward``): the same functions on
the same tensors, so the same outputs bit for bit, minus vmap's per-op dispatch.

Noisers without low-rank factors (OpenES, Sparse, the no-op noiser, user classes) run member by
member instead, each product with an ``MM_PARAM`` matrix calling the noiser's own ``do_mm`` (or
``do_Tmm``) with ``iterinfo = (epoch, thread_id)``: upstream's semantics, at N forwards' cost.

A population is valid until the trainer's parameters change (next update or
``load_state_dict``); calling it afterwards raises ``RuntimeError``. Modules that update buffers
in their forward (``BatchNorm`` in training mode) must be in eval mode: members share buffers.

Performance notes: calling a population reads no tensor values back to the host and creates
only tensors whose shapes depend on the input shapes and N, so it can be captured in a CUDA
graph (the pair engine's populations are, by :meth:`EggrollTrainer.graphed_step`); the noise is
drawn once per epoch and reused by every call (e.g. every step of a rollout). Replacing the vmap
by explicit batched kernels changes only summation order inside the matmuls, i.e. stays within
the "reduction" tolerance.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.nn.modules import module as module_hooks
from torch.nn.utils.rnn import PackedSequence

from eggroll_torch import tree
from eggroll_torch.fast.cpu_linear import onednn_usable
from eggroll_torch.fast.dispatch import below_autograd
from .member_ops import population_linear
from .routing import LinearRouting, MatrixRoute, PopulationRouting

InDims = int | None | tuple[int | None, ...]


def low_rank_route(A: torch.Tensor, B: torch.Tensor) -> MatrixRoute:
    """Upstream's ``do_mm`` (``x @ W.T + (x @ B) @ A.T``) and ``do_Tmm`` (``x @ W + (x @ A) @ B.T``)
    for one member's factors."""
    return MatrixRoute(mm=lambda x, weight: x @ weight.T + (x @ B) @ A.T,
                       tmm=lambda x, weight: x @ weight + (x @ A) @ B.T)


class Population:
    """Callable batched forward of ``size`` perturbed members of ``module`` for one epoch.

    Built by :meth:`EggrollTrainer.population` (and the trainer's ``step``), not by hand: the
    trainer draws the epoch's noise and passes it here. Member ``j`` is the trainer's thread id
    ``members.start + j``.

    Args:
        module (nn.Module): the trainer's module, run unchanged under ``functional_call``.
        size (int): number of members, the length of the leading member axis.
        epoch (int): the epoch the noise was drawn for.
        shared (Mapping[str, torch.Tensor]): ``{path: tensor}`` used unchanged by every member;
            every parameter path appears here or in ``values``. The floating dtype and the
            device of these tensors are what :meth:`__call__` requires of its inputs.
        values (Mapping[str, torch.Tensor]): ``{path: (size, *shape)}`` per-member parameters
            (full-rank noisy ``PARAM`` leaves).
        factors (Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None): ``{path: (A (size,
            out, r), B (size, in, r))}`` low-rank factors of the routed ``MM_PARAM`` matrices,
            sign and ``sigma / sqrt(r)`` folded into ``A``; ``None`` runs member by member
            through ``member_routes``.
        member_routes (Callable[[int], Mapping[str, Callable]] | None): ``index ->
            {path: MatrixRoute}``, member ``index``'s products with each matrix; used when
            ``factors`` is ``None``.
        is_current (Callable[[], bool]): tells whether the parameters the population was built
            from are still the trainer's; a call raises once it returns False.
        pair_noise (tuple[Mapping, Mapping] | None): the pair engine's noise,
            ``(matrices, vectors)`` from :meth:`.engine.PairEngine.forward_noise`; when given,
            ``values``, ``factors`` and ``member_routes`` are unused. Default ``None``.

    Attributes:
        size (int): number of members.
        epoch (int): the epoch the noise belongs to.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        size: int,
        epoch: int,
        shared: Mapping[str, torch.Tensor],
        values: Mapping[str, torch.Tensor],
        factors: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None,
        member_routes: Callable[[int], Mapping[str, Callable]] | None,
        is_current: Callable[[], bool],
        pair_noise: tuple[Mapping, Mapping] | None = None,
    ):
        self.size = size
        self.epoch = epoch
        self._module = module
        self._shared = dict(shared)
        self._values = dict(values)
        self._factors = None if factors is None else dict(factors)
        self._member_routes = member_routes
        self._is_current = is_current
        self._pair_noise = pair_noise
        floating = {t.dtype for t in self._shared.values() if t.is_floating_point()}
        self._dtype = floating.pop() if len(floating) == 1 else None
        self._device = next(iter(self._shared.values())).device if self._shared else None

    def __call__(self, *args, in_dims: InDims = 0, **kwargs) -> Any:
        """Run every member on its inputs in one batched forward.

        Args:
            *args: positional inputs of ``module.forward``. A tensor with a member axis (see
                ``in_dims``) has ``size`` entries along it, member ``i`` getting the slice at
                index ``i``; a shared tensor is given to every member whole. Floating tensors
                must have the parameters' dtype, and every tensor their device. Non-tensor
                arguments must be shared (``in_dims`` ``None`` for them).
            in_dims (int | None | tuple[int | None, ...]): per positional argument, which axis
                holds the members, as in ``torch.func.vmap``: ``0`` (default) gives member ``i``
                the slice ``x[i]``, so ``x`` is ``(size, ..., in)``; ``None`` gives every member
                the same ``x``. An int or ``None`` applies to all positional arguments; a tuple
                names one per argument. Keyword-only.
            **kwargs: keyword arguments of ``module.forward``, passed to every member unchanged
                (never split along a member axis).

        Returns:
            Any: the module's output with a leading member axis of length ``size`` on every
            tensor leaf (tuples, lists and dicts of outputs keep their structure); entry ``i``
            is member ``i``'s output.

        Raises:
            RuntimeError: the trainer's parameters changed (an update or ``load_state_dict``)
                since the population was built; get a fresh one from ``trainer.population()``.
            ValueError: ``in_dims`` has a different length than ``args``; an argument is a
                ``PackedSequence``, is on another device, or lacks a member axis of length
                ``size`` where ``in_dims`` says it has one; or the module passes an
                ``MM_PARAM`` matrix to a function that cannot be routed (see :mod:`.routing`).
            TypeError: an ``in_dims`` entry is not an int or ``None``; a non-tensor argument is
                given a member axis; a floating argument has another dtype than the parameters.
        """
        if not self._is_current():
            raise RuntimeError(
                "this population was built before the trainer's parameters changed (an update or "
                "load_state_dict since); get a fresh one with trainer.population()"
            )
        dims = self._check_inputs(args, in_dims)
        if self._pair_noise is not None:
            return self._paired(args, dims, kwargs)
        if self._factors is not None:
            return self._vectorized(args, dims, kwargs)
        return self._member_by_member(args, dims, kwargs)

    def _check_inputs(self, args: tuple, in_dims: InDims) -> tuple[int | None, ...]:
        if isinstance(in_dims, tuple):
            if len(in_dims) != len(args):
                raise ValueError(
                    f"in_dims has {len(in_dims)} entries for {len(args)} positional arguments; "
                    "give one entry (an axis or None) per positional argument"
                )
            dims = in_dims
        else:
            dims = (in_dims,) * len(args)
        for index, (arg, dim) in enumerate(zip(args, dims)):
            if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int)):
                raise TypeError(f"in_dims[{index}] must be an int axis or None, got {dim!r}")
            if isinstance(arg, PackedSequence):
                raise ValueError(
                    f"positional argument {index} is a PackedSequence, which torch.func.vmap cannot carry "
                    "to the members; pass the padded tensor (torch.nn.utils.rnn.pad_packed_sequence) and "
                    "let the recurrent layer read it padded"
                )
            if not isinstance(arg, torch.Tensor):
                if dim is not None:
                    raise TypeError(
                        f"positional argument {index} is a {type(arg).__name__}, which has no member "
                        f"axis; pass in_dims=None for it (or a tuple with None at position {index})"
                    )
                continue
            if self._device is not None and arg.device != self._device:
                raise ValueError(
                    f"positional argument {index} is on {arg.device} but the module's parameters are "
                    f"on {self._device}; move it with .to({str(self._device)!r})"
                )
            if arg.is_floating_point() and self._dtype is not None and arg.dtype != self._dtype:
                raise TypeError(
                    f"positional argument {index} has dtype {arg.dtype} but the module's parameters "
                    f"are {self._dtype}; cast it with .to({self._dtype})"
                )
            if dim is not None and (arg.ndim == 0 or arg.shape[dim] != self.size):
                raise ValueError(
                    f"positional argument {index} has shape {tuple(arg.shape)}, so axis {dim} is not "
                    f"the population axis of size {self.size}; give it shape (N={self.size}, ...) "
                    f"or pass in_dims=None to share it across members"
                )
        return dims

    def _member_forward(self, values, factors, args, kwargs):
        routes = {
            path: (self._shared[path], low_rank_route(A, B)) for path, (A, B) in factors.items()
        }
        with LinearRouting(routes):
            return functional_call(self._module, {**self._shared, **values}, args, kwargs)

    def _vectorized(self, args, dims, kwargs):
        # The member index is always mapped so that vmap has a batched input even when no
        # parameter is perturbed and every argument is shared.
        def member(index, values, factors, *member_args):
            del index
            return self._member_forward(values, factors, member_args, kwargs)

        members = torch.arange(self.size, device=self._device)
        return vmap(member, in_dims=(0, 0, 0, *dims), randomness="different")(
            members, self._values, self._factors, *args
        )

    def _paired(self, args, dims, kwargs):
        # Parameters stay shared; the routing mode applies each member's noise where the
        # module uses a parameter (see PopulationRouting).
        matrices, vectors = self._pair_noise
        if self._device is not None and self._device.type == "cpu":
            onednn_usable()  # decided here, outside vmap, where its probe can run
        if not kwargs and len(args) == 1:
            out = _chain_forward(self._module, self._shared, matrices, vectors, args[0], dims[0], self.size)
            if out is not None:
                return out

        def member(index, *member_args):
            with PopulationRouting(matrices, vectors, index):
                return functional_call(self._module, self._shared, member_args, kwargs)

        members = torch.arange(self.size, device=self._device)
        return vmap(member, in_dims=(0, *dims), randomness="different")(members, *args)

    def _member_by_member(self, args, dims, kwargs):
        outputs = []
        for i in range(self.size):
            member_args = tuple(a if d is None else a.select(d, i) for a, d in zip(args, dims))
            values = {path: v[i] for path, v in self._values.items()}
            routes = {path: (self._shared[path], route) for path, route in self._member_routes(i).items()}
            with LinearRouting(routes):
                outputs.append(functional_call(self._module, {**self._shared, **values}, member_args, kwargs))
        flat = [tree.flatten(out) for out in outputs]
        stacked = [torch.stack(leaves) for leaves in zip(*(leaves for leaves, _ in flat))]
        return tree.unflatten(flat[0][1], stacked)


# Modules whose forward is one elementwise function of their input: applied to all members'
# activations stacked along the member axis, they compute what vmap computes from each member's.
_ELEMENTWISE = frozenset({nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Softplus,
                          nn.Identity})


def _chain_forward(module, shared, matrices, vectors, x, dim, size):
    """The pair population's forward without vmap, or None where it does not apply.

    For a plain ``nn.Sequential`` (nested ones included) of ``nn.Linear`` layers whose weights
    carry the pair noise and of the elementwise activations :data:`_ELEMENTWISE`, with no hooks
    and one floating input, the vmap forward runs exactly :func:`.member_ops.population_linear`
    (the population rule of every routed ``F.linear``) and each activation once on the stacked
    activations; this calls the same functions on the same tensors in the same order, so the
    outputs are the same bits, without vmap's per-op dispatch (most of a small model's forward).
    Anything else returns None before computing anything, and the vmap forward runs.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.requires_grad \
            or x.ndim < (1 if dim is None else 2) or _any_global_hooks() or torch._C._get_tracing_state():
        return None
    layers: list = []
    if not _chain_layers(module, "", shared, matrices, vectors, layers):
        return None
    h = x.expand(size, *x.shape) if dim is None else x if dim == 0 else x.movedim(dim, 0)
    features, linear = h.shape[-1], False
    for layer in layers:
        if type(layer) is tuple:
            if layer[0].weight.shape[1] != features:
                return None
            features, linear = layer[0].weight.shape[0], True
    if not linear:
        return None
    # Nothing requires grad (x does not, the parameters are detached), so autograd has no part:
    # below it the same ops cost less. Not when an activation (which may work in place) comes
    # first: it would change the caller's x without autograd's version counter seeing it.
    with below_autograd() if type(layers[0]) is tuple else contextlib.nullcontext():
        for layer in layers:
            if type(layer) is not tuple:
                # Hooks were ruled out, so the call is the module's forward.
                h = layer.forward(h)
                continue
            noise, bias, bias_noise = layer
            # A deferred matrix is drawn here; rebinding ``noise`` above dropped the last one's.
            noise = noise.materialize()
            # As PopulationRouting routes F.linear: a bias that is neither the folded one nor
            # noisy is added after the product.
            if bias is not None and bias is not noise.bias and bias_noise is None:
                h = population_linear(h, noise.weight, None, None, noise.B, noise.rows, size, 0) + bias
            else:
                folded = noise.bias_columns if bias is noise.bias else 0
                h = population_linear(h, noise.weight, bias, bias_noise, noise.B, noise.rows, size, folded)
    return h


def _chain_layers(module: nn.Module, prefix: str, shared, matrices, vectors, layers: list) -> bool:
    """Append ``module``'s layers to ``layers``: ``(MatrixNoise, bias, bias noise)`` for a
    ``Linear`` whose weight carries the pair noise, the module itself for an activation; False
    when it is not such a chain."""
    if module._forward_hooks or module._forward_pre_hooks or module._backward_hooks \
            or module._backward_pre_hooks or "forward" in module.__dict__:
        return False
    kind = type(module)
    if kind is nn.Sequential:
        for name, child in module._modules.items():
            if child is None or not _chain_layers(child, f"{prefix}{name}.", shared, matrices, vectors, layers):
                return False
        return True
    if kind is nn.Linear:
        weight_path = prefix + "weight"
        noise = matrices.get(weight_path)
        if noise is None or noise.weight is not shared.get(weight_path):
            return False
        if module.bias is None:
            layers.append((noise, None, None))
            return True
        bias_path = prefix + "bias"
        if bias_path not in shared:
            return False
        noisy = vectors.get(bias_path)
        layers.append((noise, shared[bias_path], None if noisy is None else noisy[1]))
        return True
    if kind in _ELEMENTWISE:
        layers.append(module)
        return True
    return False


def _any_global_hooks() -> bool:
    return bool(module_hooks._global_forward_hooks or module_hooks._global_forward_pre_hooks
                or module_hooks._global_backward_hooks or module_hooks._global_backward_pre_hooks)
