"""Upstream's public names and signatures, held against ours module by module."""
from __future__ import annotations

import inspect
import types


def assert_same_api(theirs: types.ModuleType, ours: types.ModuleType) -> int:
    """Every function and class ``theirs`` defines exists in ``ours`` with the same signature, and
    so does each classmethod a class defines (found in ours on the class or a base); returns how
    many functions and classes were compared."""
    checked = 0
    for name, obj in vars(theirs).items():
        if not (inspect.isfunction(obj) or inspect.isclass(obj)) or obj.__module__ != theirs.__name__:
            continue
        mine = getattr(ours, name)
        if inspect.isfunction(obj):
            assert inspect.signature(mine) == inspect.signature(obj), name
        for attr, member in vars(obj).items() if inspect.isclass(obj) else ():
            if isinstance(member, classmethod):
                here = inspect.getattr_static(mine, attr)
                assert isinstance(here, classmethod), f"{name}.{attr}"
                assert inspect.signature(here.__func__) == inspect.signature(member.__func__), f"{name}.{attr}"
        checked += 1
    return checked
