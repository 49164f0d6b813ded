"""A functional model of :mod:`eggroll_torch.models` as an ``nn.Module`` that ``EggrollTrainer`` trains.

The functional models (upstream's ``MLP``, the RL policies, RWKV-7, ...) keep their parameters in a
nested dict beside a ``scan_map`` and an ``es_map``, and run a whole population at once when given
a population ``iterinfo``. :class:`FunctionalModule` registers that dict as the module's
parameters, path for path (``params["blocks"]["att"]["key"]["weight"]`` is the parameter
``"blocks.att.key.weight"``), so that:

- the trainer's ES classes are the model's ``es_map`` (not the ``nn.Linear`` defaults), and its
  per-parameter keys are ``simple_es_tree_key(params, es_key, scan_map)``: a layer-stacked leaf
  gets one key per layer, exactly as upstream's model gets from the same ES key;
- a population runs the model's own ``forward`` once, with the trainer's noiser and the members'
  ``iterinfo`` (:class:`FunctionalPopulation`), instead of ``vmap`` over the module;
- the update is the noiser's ``do_updates`` on the params tree (the pair engine, which knows only
  unstacked ``nn.Linear``-style matrices, is not used), so noise and update are the functional
  layer's bit for bit.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from eggroll_torch import noiser as _noisers
from eggroll_torch import random as es_random
from eggroll_torch.models.base_model import CommonInit, Model
from eggroll_torch.models.common import EMB_PARAM, EXCLUDED, MM_PARAM, PARAM, simple_es_tree_key
from .param_tree import flatten_paths, nest

__all__ = ["FunctionalModule", "FunctionalPopulation"]

InDims = int | None | tuple[int | None, ...]


_ES_CLASSES = (PARAM, MM_PARAM, EMB_PARAM, EXCLUDED)


def _register(owner: nn.Module, tree: Mapping, prefix: str) -> None:
    """One level of the params tree on ``owner``: a child module per sub-dict, a parameter per tensor."""
    for name, value in tree.items():
        path = f"{prefix}.{name}" if prefix else str(name)
        if not isinstance(name, str) or not name or "." in name or hasattr(owner, name):
            raise ValueError(
                f"params entry {path!r} cannot be a module attribute name (it must be a non-empty str "
                f"without '.' that {type(owner).__name__} does not already define); rename it in the model's params"
            )
        if isinstance(value, Mapping):
            branch = nn.Module()
            _register(branch, value, path)
            owner.add_module(name, branch)
        elif isinstance(value, torch.Tensor):
            owner.register_parameter(name, nn.Parameter(value.detach().clone(), requires_grad=False))
        else:
            raise TypeError(f"params entry {path!r} must be a tensor or a dict, got {type(value).__name__}")


class FunctionalModule(nn.Module):
    """``model`` (a :class:`~eggroll_torch.models.base_model.Model` subclass) with ``init``'s
    parameters registered as this module's ``nn.Parameter`` s.

    Args:
        model (type[Model]): the functional model class, e.g. ``eggroll_torch.models.common.MLP``
            or ``eggroll_torch.models.llm.rwkv7.ScanRWKV``.
        init (CommonInit): ``(frozen_params, params, scan_map, es_map)`` as the model's
            ``rand_init`` or ``load_from_torch`` returns it. ``params`` is copied (parameters
            have ``requires_grad=False``: ES uses no gradients).

    Attributes:
        model (type[Model]): the functional model class.
        frozen_params (Any): the model's ``frozen_params`` (e.g. the MLP's activation).
        scan_paths (dict[str, tuple]): ``{parameter path: stacked axes}`` from ``scan_map``.
        es_paths (dict[str, int]): ``{parameter path: ES class}`` from ``es_map``: the classes
            ``EggrollTrainer`` uses by default.

    Raises:
        TypeError: ``model`` is not a ``Model`` subclass; ``init`` is not a ``CommonInit`` (or
            4-tuple) or holds a leaf that is not a tensor.
        ValueError: ``scan_map`` or ``es_map`` does not have an entry for exactly every
            parameter; an ``es_map`` value is not an ES class; a params key cannot be an
            attribute name.

    Calling the module runs the unperturbed model (``iterinfo=None``) on inputs without a member
    axis: ``module(*args, **kwargs) == model.forward(..., params, ..., None, *args, **kwargs)``.
    """

    def __init__(self, model: type[Model], init: CommonInit):
        super().__init__()
        if not (isinstance(model, type) and issubclass(model, Model)):
            raise TypeError(
                f"model must be a functional model class from eggroll_torch.models (a Model subclass), got {model!r}"
            )
        if not isinstance(init, tuple) or len(init) != 4:
            raise TypeError(
                "init must be the CommonInit (frozen_params, params, scan_map, es_map) that the model's "
                f"rand_init or load_from_torch returns, got {type(init).__name__}"
            )
        frozen_params, params, scan_map, es_map = init
        if not isinstance(params, Mapping):
            raise TypeError(f"init.params must be a nested dict of tensors, got {type(params).__name__}")
        flat = flatten_paths(params)
        scan_paths = _per_path("scan_map", scan_map, flat)
        es_paths = _per_path("es_map", es_map, flat)
        for path, es_class in es_paths.items():
            if isinstance(es_class, bool) or es_class not in _ES_CLASSES:
                raise ValueError(f"es_map entry {path!r} = {es_class!r} is not an ES class (PARAM, MM_PARAM, "
                                 "EMB_PARAM or EXCLUDED)")
        self.model = model
        self.frozen_params = frozen_params
        self.scan_paths = {path: tuple(axes) for path, axes in scan_paths.items()}
        self.es_paths = {path: int(c) for path, c in es_paths.items()}
        _register(self, params, "")

    @classmethod
    def from_torch(cls, model: type[Model], state_dict: Mapping[str, torch.Tensor], config: Any = None,
                   dtype: torch.dtype = torch.bfloat16) -> FunctionalModule:
        """``FunctionalModule(model, model.load_from_torch(state_dict, config, dtype))``.

        Args:
            model (type[Model]): a language model of :mod:`eggroll_torch.models.llm`, e.g.
                ``rwkv7.ScanRWKV`` or ``qrwkv6.BaseRWKV``.
            state_dict (Mapping[str, torch.Tensor]): weights in the checkpoint layout the model
                reads (an official RWKV-7 ``.pth``; QRWKV6's Hugging Face layout); not modified.
            config (Any): the model's config (QRWKV6: ``{"head_size": S}``; RWKV-7: ``None``).
            dtype (torch.dtype): the parameters' dtype. Default ``torch.bfloat16``, upstream's.

        Returns:
            FunctionalModule: the loaded model.
        """
        return cls(model, model.load_from_torch(dict(state_dict), config, dtype))

    def param_tree(self) -> dict:
        """The functional ``params`` tree of the current parameters.

        Returns:
            dict: nested dicts of the parameters themselves, detached (not copies).
        """
        return nest({path: p.detach() for path, p in self.named_parameters()})

    def common_init(self) -> CommonInit:
        """The model as the functional layer takes it.

        Returns:
            CommonInit: ``(frozen_params, param_tree(), scan_map, es_map)``.
        """
        return CommonInit(self.frozen_params, self.param_tree(), nest(self.scan_paths), nest(self.es_paths))

    def forward(self, *args, **kwargs) -> Any:
        """The unperturbed model on one input (no member axis).

        Args:
            *args: the model's inputs after ``iterinfo`` (RWKV: ``tokens (T,)``, ``state``).
            **kwargs: further model arguments (RWKV: ``length``, ``new_starts``).

        Returns:
            Any: ``model.forward``'s output with ``iterinfo=None`` (RWKV: logits and state).
        """
        params = self.param_tree()
        # With iterinfo None no noiser reads its keys or parameters; any key tree of the right shape does.
        keys = simple_es_tree_key(params, es_random.key(0).to(_device_of(params)), nest(self.scan_paths))
        return self.model.forward(_noisers.all_noisers["noop"], None, None, self.frozen_params, params, keys, None,
                                  *args, **kwargs)

    def extra_repr(self) -> str:
        """The model class, in ``repr(module)``.

        Returns:
            str: ``"model=<module>.<class>"``.
        """
        return f"model={self.model.__module__}.{self.model.__qualname__}"


class FunctionalPopulation:
    """One epoch's ``size`` members of a :class:`FunctionalModule`, run by one call of the model.

    Built by :meth:`EggrollTrainer.population`, not by hand. Calling it runs
    ``model.forward(noiser, ..., params, keys, iterinfo, *args, **kwargs)`` with the trainer's
    noiser state and the members' ``iterinfo`` (``(epochs, thread_ids)``), which draws each
    member's noise as the functional layer does.

    Args:
        run (Callable): ``model.forward`` with every argument up to ``iterinfo`` bound.
        size (int): number of members.
        epoch (int): the epoch the noise belongs to.
        is_current (Callable[[], bool]): whether the trainer's parameters are still those the
            population was built from.

    Attributes:
        size (int): number of members.
        epoch (int): the epoch the noise belongs to.
    """

    def __init__(self, run: Callable[..., Any], *, size: int, epoch: int, is_current: Callable[[], bool]):
        self.size = size
        self.epoch = epoch
        self._run = run
        self._is_current = is_current

    def __call__(self, *args, in_dims: InDims = 0, **kwargs) -> Any:
        """Every member on its inputs, in one call of the model's population forward.

        Args:
            *args: the model's positional inputs after ``iterinfo``. A tensor with ``in_dims``
                ``0`` has a leading member axis of length ``size`` (member ``i`` gets ``x[i]``);
                with ``None`` every member gets all of it (it is expanded, not copied).
                Non-tensor arguments are passed unchanged.
            in_dims (int | None | tuple[int | None, ...]): ``0`` or ``None`` per positional
                tensor argument (one value for all, or a tuple with one per argument).
                Keyword-only.
            **kwargs: further model arguments, passed unchanged (e.g. RWKV's ``length`` and
                ``new_starts``).

        Returns:
            Any: the model's population output, a leading member axis on every tensor.

        Raises:
            RuntimeError: the trainer's parameters changed since the population was built.
            ValueError: ``in_dims`` has another length than ``args`` or an entry other than 0
                and None; a member-axis tensor's leading axis is not ``size``.
        """
        if not self._is_current():
            raise RuntimeError(
                "this population was built before the trainer's parameters changed (an update or "
                "load_state_dict since); get a fresh one with trainer.population()"
            )
        dims = in_dims if isinstance(in_dims, tuple) else (in_dims,) * len(args)
        if len(dims) != len(args):
            raise ValueError(
                f"in_dims has {len(dims)} entries for {len(args)} positional arguments; give one per argument")
        batched = []
        for index, (arg, dim) in enumerate(zip(args, dims)):
            if dim not in (0, None) or isinstance(dim, bool):
                raise ValueError(f"in_dims[{index}] = {dim!r}: a functional model's inputs take 0 (leading member "
                                 "axis) or None (shared); move the member axis first")
            if not isinstance(arg, torch.Tensor):
                batched.append(arg)
            elif dim is None:
                batched.append(arg.expand(self.size, *arg.shape))
            elif arg.ndim == 0 or arg.shape[0] != self.size:
                raise ValueError(
                    f"argument {index} has shape {tuple(arg.shape)} but in_dims says its leading axis holds the "
                    f"{self.size} members; pass in_dims=None for an input all members share"
                )
            else:
                batched.append(arg)
        return self._run(*batched, **kwargs)


def _per_path(name: str, tree: Any, flat_params: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """``tree`` (a map shaped like params) as ``{path: leaf}``, checked to cover exactly the params."""
    if not isinstance(tree, Mapping):
        raise TypeError(f"init.{name} must be a nested dict shaped like params, got {type(tree).__name__}")
    flat = flatten_paths(tree)
    if set(flat) != set(flat_params):
        missing, extra = sorted(set(flat_params) - set(flat)), sorted(set(flat) - set(flat_params))
        raise ValueError(f"init.{name} must have one entry per parameter; missing {missing[:6]}, extra {extra[:6]}")
    return flat


def _device_of(params: Mapping) -> torch.device:
    return next(iter(flatten_paths(params).values())).device
