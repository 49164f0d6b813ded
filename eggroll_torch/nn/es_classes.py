"""Which ES class each parameter of an ``nn.Module`` gets.

The classes are upstream's ``es_map`` values (``eggroll_torch.models.common``). By default every
weight matrix a layer multiplies by is ``MM_PARAM`` (low-rank noise ``A @ B.T``, EGGROLL):

=============================================  ==========================================  ============
layer                                          parameters                                  class
=============================================  ==========================================  ============
``nn.Linear`` (and subclasses, e.g. the        ``weight``                                  ``MM_PARAM``
``out_proj`` of ``nn.MultiheadAttention``)
``nn.MultiheadAttention``                      ``in_proj_weight``, ``q/k/v_proj_weight``   ``MM_PARAM``
``nn.RNN``, ``nn.GRU``, ``nn.LSTM``            ``weight_ih_l*``, ``weight_hh_l*``,         ``MM_PARAM``
                                               ``weight_hr_l*`` (every layer, direction)
``nn.RNNCell``, ``nn.GRUCell``, ``nn.LSTMCell``  ``weight_ih``, ``weight_hh``               ``MM_PARAM``
``transformers`` ``Conv1D`` (GPT-2)            ``weight`` (stored ``(in, out)``)           ``MM_PARAM``
``nn.Embedding``, ``nn.EmbeddingBag``          ``weight``                                  ``EMB_PARAM``
anything else                                  biases, norms, conv kernels, raw            ``PARAM``
                                               ``nn.Parameter``
=============================================  ==========================================  ============

``EMB_PARAM`` leaves get no noise and a zero update, as upstream's; ``PARAM`` leaves get full-rank
noise; ``EXCLUDED`` (no noise, zero update) is only given by override. An ``MM_PARAM`` is applied
without forming the perturbed matrix (see :mod:`.routing`): as ``x @ W.T`` when the layer calls
``F.linear`` (upstream's ``do_mm``) and as ``x @ W`` when it calls ``torch.matmul`` /
``torch.addmm`` with the matrix second (upstream's ``do_Tmm``); either way member ``n``'s matrix is
``W + s_n * A @ B.T`` with ``A`` over the matrix's first axis. A matrix that reaches any other
function raises an error naming it and the override, e.g. ``es_classes={path: PARAM}``.
Hugging Face Llama/Qwen layers are ``nn.Linear``, so they need no entry of their own.

``requires_grad`` is ignored: ES uses no gradients. Freeze a parameter with
``es_classes={name: EXCLUDED}``. Weight-decaying solvers (``adamw``) still decay ``EXCLUDED`` and
``EMB_PARAM`` leaves, exactly as upstream's ``optax.adamw`` decays every leaf.
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping

import torch
from torch import nn

from eggroll_torch.models.common import EMB_PARAM, EXCLUDED, MM_PARAM, PARAM
from .functional_module import FunctionalModule

CLASS_NAMES = {PARAM: "PARAM", MM_PARAM: "MM_PARAM", EMB_PARAM: "EMB_PARAM", EXCLUDED: "EXCLUDED"}


def named_parameters_with_owner(module: nn.Module) -> list[tuple[str, nn.Module, str, torch.nn.Parameter]]:
    """``(path, owning module, attribute name, parameter)`` for each distinct parameter.

    Paths and their order are those of ``module.named_parameters()``: a parameter shared by
    several modules (tied weights) appears once, under the first path torch finds it at.
    """
    seen: set[int] = set()
    out = []
    for prefix, owner in module.named_modules():
        for attr, param in owner._parameters.items():
            if param is None or id(param) in seen:
                continue
            seen.add(id(param))
            out.append((f"{prefix}.{attr}" if prefix else attr, owner, attr, param))
    return out


def _is_hf_conv1d(module: nn.Module) -> bool:
    # Matched by name so that transformers stays an optional dependency.
    cls = type(module)
    return cls.__name__ == "Conv1D" and cls.__module__.startswith("transformers")


def _is_matrix(owner: nn.Module, attr: str) -> bool:
    if isinstance(owner, nn.Linear) or _is_hf_conv1d(owner):
        return attr == "weight"
    if isinstance(owner, nn.MultiheadAttention):
        return attr in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")
    if isinstance(owner, nn.RNNBase):
        return attr.startswith(("weight_ih_l", "weight_hh_l", "weight_hr_l"))
    if isinstance(owner, nn.RNNCellBase):
        return attr in ("weight_ih", "weight_hh")
    return False


def default_es_classes(module: nn.Module) -> dict[str, int]:
    """The ES class of every parameter path of ``module`` under the table in this module's doc.

    Args:
        module (nn.Module): any module; only its layer types and parameter names are read.

    Returns:
        dict[str, int]: ``{path: PARAM | MM_PARAM | EMB_PARAM}`` (``EXCLUDED`` is never a
        default) for every distinct parameter, in ``module.named_parameters()`` order and with
        its paths (a tied weight once, under the first path). A
        :class:`~.functional_module.FunctionalModule` gets its model's ``es_map`` instead
        (``EXCLUDED`` included).
    """
    if isinstance(module, FunctionalModule):
        return {path: module.es_paths[path] for path, _ in module.named_parameters()}
    classes = {}
    for path, owner, attr, _ in named_parameters_with_owner(module):
        if _is_matrix(owner, attr):
            classes[path] = MM_PARAM
        elif attr == "weight" and isinstance(owner, (nn.Embedding, nn.EmbeddingBag)):
            classes[path] = EMB_PARAM
        else:
            classes[path] = PARAM
    return classes


def matrix_biases(module: nn.Module) -> dict[str, str]:
    """``{weight path: bias path}`` for the matrices that every call adds one known bias to
    (``nn.Linear``, the packed ``nn.MultiheadAttention`` projection, the recurrent layers'
    ``weight_*`` / ``bias_*`` pairs), so the population forward can fold the bias into the
    low-rank correction. A weight shared by layers with different biases is left out."""
    path_of = {id(p): path for path, _, _, p in named_parameters_with_owner(module)}
    found: dict[str, set] = {}

    def pair(weight, bias):
        if isinstance(weight, torch.Tensor) and isinstance(bias, torch.Tensor):
            found.setdefault(path_of[id(weight)], set()).add(path_of[id(bias)])

    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            pair(layer.weight, layer.bias)
        elif isinstance(layer, nn.MultiheadAttention):
            pair(layer.in_proj_weight, layer.in_proj_bias)
        elif isinstance(layer, (nn.RNNBase, nn.RNNCellBase)):
            for name, weight in layer.named_parameters(recurse=False):
                if name.startswith(("weight_ih", "weight_hh")):
                    pair(weight, getattr(layer, "bias" + name[len("weight"):], None))
    return {weight: next(iter(biases)) for weight, biases in found.items() if len(biases) == 1}


def resolve_es_classes(module: nn.Module, overrides: Mapping[str, int] | None) -> dict[str, int]:
    """Default classes (:func:`default_es_classes`) with ``overrides`` applied, validated.

    Args:
        module (nn.Module): the module whose parameters are classified.
        overrides (Mapping[str, int] | None): ``{parameter path: class}``, paths as
            ``module.named_parameters()`` spells them, classes ``PARAM``, ``MM_PARAM``,
            ``EMB_PARAM`` or ``EXCLUDED`` (ints 0-3, not bools). ``None``: the defaults.

    Returns:
        dict[str, int]: ``{path: class}`` for every distinct parameter, in
        ``module.named_parameters()`` order, overridden entries replaced.

    Raises:
        TypeError: ``overrides`` is not a mapping.
        ValueError: an override names a path the module does not have (close matches are
            suggested), gives a value that is not an ES class, or puts ``MM_PARAM`` on a
            parameter that is not 2-D.
    """
    classes = default_es_classes(module)
    if overrides is None:
        return classes
    if not isinstance(overrides, Mapping):
        raise TypeError(
            f"es_classes must be a mapping {{parameter path: class}}, got {type(overrides).__name__}; "
            "e.g. es_classes={'0.weight': EXCLUDED}"
        )
    shapes = {path: tuple(p.shape) for path, _, _, p in named_parameters_with_owner(module)}
    # A layer-stacked leaf of a functional model is a matrix per layer.
    stacked = module.scan_paths if isinstance(module, FunctionalModule) else {}
    for path, cls in overrides.items():
        if path not in classes:
            close = difflib.get_close_matches(str(path), list(classes), n=3)
            hint = f"; did you mean {close}?" if close else f"; the module's paths are {list(classes)[:12]}"
            raise ValueError(
                f"es_classes names {path!r}, which is not a parameter path of the module "
                f"(paths are those of module.named_parameters(); tied weights appear once){hint}"
            )
        if isinstance(cls, bool) or cls not in CLASS_NAMES:
            raise ValueError(
                f"es_classes[{path!r}] = {cls!r} is not an ES class; use one of PARAM, MM_PARAM, "
                "EMB_PARAM, EXCLUDED from eggroll_torch.nn"
            )
        if cls == MM_PARAM and len(shapes[path]) - len(stacked.get(path, ())) != 2:
            raise ValueError(
                f"es_classes[{path!r}] = MM_PARAM needs a 2-D (out, in) parameter (per stacked layer), but "
                f"its shape is {shapes[path]}; use PARAM for full-rank noise"
            )
        classes[path] = int(cls)
    return classes
