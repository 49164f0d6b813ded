"""The public API documents itself: every public callable of ``eggroll_torch.nn``,
``eggroll_torch.random`` and the adapter protocol (``conformance.adapters.base``) has a
Google-style docstring with an ``Args:`` entry per parameter, a ``Returns:`` section unless it
returns None, and a ``Raises:`` section when its body raises.
"""
from __future__ import annotations

import ast
import inspect
import re
import textwrap
import types

import pytest

import conformance.adapters.base as adapter_base
import eggroll_torch.nn
import eggroll_torch.random
from eggroll_torch.nn.graphed import GraphedGeneration

_SECTION = re.compile(r"^([A-Z][A-Za-z ]*):\s*$")
_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(\([^)]*\))?\s*:")
_PROJECT = ("eggroll_torch", "conformance")


def _sections(doc: str) -> dict[str, list[str]]:
    """``{header: body lines}`` of a cleaned docstring; a header is an unindented ``Name:`` line."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in doc.splitlines():
        match = _SECTION.match(line)
        if match:
            current = sections.setdefault(match.group(1), [])
        elif current is not None:
            if line and not line[0].isspace():
                current = None  # unindented prose ends the section
            else:
                current.append(line)
    return sections


def _entries(body: list[str]) -> set[str]:
    """Names of a section's entries: its least-indented lines, ``name (type): text``."""
    lines = [line for line in body if line.strip()]
    if not lines:
        return set()
    indent = min(len(line) - len(line.lstrip()) for line in lines)
    names = set()
    for line in lines:
        if len(line) - len(line.lstrip()) == indent:
            match = _ENTRY.match(line.strip())
            if match:
                names.add(match.group(1))
    return names


def _raises_directly(fn) -> bool:
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return False
    return any(isinstance(node, ast.Raise) for node in ast.walk(ast.parse(source)))


def _returns_none(fn) -> bool:
    if fn.__name__ == "__init__":
        return True
    return inspect.signature(fn).return_annotation in (None, "None")


def _function_problems(name: str, fn, doc: str | None = None, is_method: bool = False) -> list[str]:
    """What ``fn``'s docstring (or ``doc``, for a constructor documented on its class) lacks."""
    doc = inspect.getdoc(fn) if doc is None else doc
    if not doc:
        return [f"{name}: no docstring"]
    params = list(inspect.signature(fn).parameters)
    if is_method:
        params = params[1:]
    sections = _sections(doc)
    problems = []
    if params:
        if "Args" not in sections:
            problems.append(f"{name}: no Args: section (parameters {params})")
        else:
            documented = _entries(sections["Args"])
            missing = [p for p in params if p not in documented]
            extra = sorted(documented - set(params))
            if missing:
                problems.append(f"{name}: Args: lacks {missing}")
            if extra:
                problems.append(f"{name}: Args: names {extra}, which are not parameters")
    if not _returns_none(fn) and "Returns" not in sections:
        problems.append(f"{name}: no Returns: section")
    if _raises_directly(fn) and "Raises" not in sections:
        problems.append(f"{name}: raises but has no Raises: section")
    return problems


def _class_problems(name: str, cls: type) -> list[str]:
    problems = [] if inspect.getdoc(cls) and cls.__doc__ else [f"{name}: no class docstring"]
    init = vars(cls).get("__init__")
    if init is not None:
        # Args may sit on the class (the usual place, and the only one for a dataclass) or on __init__.
        doc = "\n\n".join(d for d in (inspect.getdoc(cls), inspect.getdoc(init)) if d)
        problems += _function_problems(f"{name}.__init__", init, doc=doc, is_method=True)
    seen = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith(_PROJECT):
            continue
        for attr, value in vars(klass).items():
            if attr in seen or (attr.startswith("_") and attr != "__call__"):
                continue
            seen.add(attr)
            where = f"{name}.{attr}"
            if isinstance(value, property):
                if not inspect.getdoc(value.fget):
                    problems.append(f"{where}: property without a docstring")
            elif isinstance(value, (staticmethod, classmethod)):
                problems += _function_problems(where, value.__func__, is_method=isinstance(value, classmethod))
            elif isinstance(value, types.FunctionType):
                problems += _function_problems(where, value, is_method=True)
    return problems


def _problems(objects: dict[str, object]) -> tuple[list[str], int]:
    problems, checked = [], 0
    for name, obj in objects.items():
        if isinstance(obj, type):
            problems += _class_problems(name, obj)
        elif callable(obj):
            problems += _function_problems(name, obj)
        else:
            continue  # constants (ES classes, capability strings)
        checked += 1
    return problems, checked


def _public(module, names=None) -> dict[str, object]:
    names = module.__all__ if names is None else names
    return {f"{module.__name__}.{n}": getattr(module, n) for n in names}


SURFACES = {
    "eggroll_torch.nn": lambda: {
        **_public(eggroll_torch.nn),
        # Not exported, but EggrollTrainer.graphed_step hands it to users.
        "eggroll_torch.nn.graphed.GraphedGeneration": GraphedGeneration,
    },
    "eggroll_torch.random": lambda: _public(eggroll_torch.random),
    # The protocol port authors implement: what the module defines, not what it imports.
    "conformance.adapters.base": lambda: _public(adapter_base, [
        n for n, v in vars(adapter_base).items()
        if not n.startswith("_") and getattr(v, "__module__", None) == adapter_base.__name__
    ]),
}


@pytest.mark.parametrize("surface", sorted(SURFACES))
def test_public_callables_document_args_returns_raises(surface):
    problems, checked = _problems(SURFACES[surface]())
    assert checked >= 3, f"{surface}: found only {checked} public callables; is the surface still collected?"
    assert not problems, f"{surface}: {len(problems)} docstring gap(s):\n  " + "\n  ".join(problems)


def test_checker_reports_each_kind_of_gap():
    def undocumented(x):
        return x

    def partial(x, y) -> int:
        """Summary.

        Args:
            x (int): documented.
            z (int): not a parameter.
        """
        if x:
            raise ValueError("x")
        return y

    def complete(x, *args, flag: bool = False, **kwargs) -> None:
        """Summary.

        Args:
            x (int): the value.
            *args: more values.
            flag (bool): a switch.
            **kwargs: options.

        Raises:
            ValueError: never, in fact.
        """
        raise ValueError

    assert _function_problems("undocumented", undocumented) == ["undocumented: no docstring"]
    assert _function_problems("partial", partial) == [
        "partial: Args: lacks ['y']",
        "partial: Args: names ['z'], which are not parameters",
        "partial: no Returns: section",
        "partial: raises but has no Raises: section",
    ]
    assert _function_problems("complete", complete) == []
