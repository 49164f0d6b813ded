"""Which ES class each parameter of an ``nn.Module`` gets.

The classes are upstream's ``es_map`` values (``eggroll_torch.models.common``):

- ``MM_PARAM`` (low-rank noise, ``A @ B.T``): the ``weight`` of every ``nn.Linear`` (and subclass).
  torch stores it as ``(out_features, in_features)``, the layout upstream's ``MM`` uses, so the
  forward is upstream's ``do_mm``: ``x @ W.T + (x @ B) @ A.T``.
- ``EMB_PARAM`` (no noise, zero update): the ``weight`` of ``nn.Embedding`` and ``nn.EmbeddingBag``.
- ``PARAM`` (full-rank noise): everything else (biases, LayerNorm/conv weights, raw ``nn.Parameter``).
- ``EXCLUDED`` (no noise, zero update): only by override.

One exception to the first rule: the ``out_proj`` of ``nn.MultiheadAttention`` is an
``nn.Linear`` that torch never calls (``F.multi_head_attention_forward`` reads its weight
directly), so its weight defaults to ``PARAM``.

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


def default_es_classes(module: nn.Module) -> dict[str, int]:
    """The ES class of every parameter path of ``module`` under the rules in this module's doc."""
    attention_out_proj = {
        id(m.out_proj) for m in module.modules() if isinstance(m, nn.MultiheadAttention)
    }
    classes = {}
    for path, owner, attr, _ in named_parameters_with_owner(module):
        if attr == "weight" and isinstance(owner, nn.Linear) and id(owner) not in attention_out_proj:
            classes[path] = MM_PARAM
        elif attr == "weight" and isinstance(owner, (nn.Embedding, nn.EmbeddingBag)):
            classes[path] = EMB_PARAM
        else:
            classes[path] = PARAM
    return classes


def resolve_es_classes(module: nn.Module, overrides: Mapping[str, int] | None) -> dict[str, int]:
    """Default classes with ``overrides`` (``{path: class}``) applied, validated.

    Raises ``ValueError`` for an unknown path, an unknown class value or ``MM_PARAM`` on a
    parameter that is not 2-D, and ``TypeError`` when ``overrides`` is not a mapping.
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
        if cls == MM_PARAM and len(shapes[path]) != 2:
            raise ValueError(
                f"es_classes[{path!r}] = MM_PARAM needs a 2-D (out, in) parameter, but its shape is "
                f"{shapes[path]}; use PARAM for full-rank noise"
            )
        classes[path] = int(cls)
    return classes
