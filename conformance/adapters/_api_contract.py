"""Upstream's API contract, read off any library with its interface (jax_reference, upstream,
eggroll_torch): what ``init_noiser`` returns, what ``do_updates`` returns and mutates, the
optimizer state after a step, the one-member call form and the public functions' parameter
names. Names and flags are encoded as integer arrays so the harness compares them exactly."""
from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np

PUBLIC = ("init_noiser", "do_mm", "do_Tmm", "get_noisy_standard", "convert_fitnesses", "do_updates")


def names(items) -> np.ndarray:
    """``","``-joined names as uint8 code points (an empty array for none)."""
    return np.frombuffer(",".join(items).encode(), dtype=np.uint8).copy()


def flag(value: bool) -> np.ndarray:
    return np.array([int(bool(value))], dtype=np.int8)


def describe(cls, init: Callable, params: dict, keys: dict, es_map: dict, fitnesses, iterinfo, one_member: tuple,
             x, out: Callable, same: Callable) -> dict[str, np.ndarray]:
    """The contract of noiser class ``cls``: ``init(params) -> (frozen, noiser_params)`` with
    the case's settings; ``iterinfo`` the population's, ``one_member`` ``(epoch, thread)`` as
    Python ints; ``out`` converts a library array to numpy; ``same(a, b)`` compares two arrays."""
    frozen, noiser_params = init(params)
    result = {"init/frozen": names(sorted(frozen)), "init/mutable": names(sorted(noiser_params))}
    given, before = dict(noiser_params), dict(params)
    returned = cls.do_updates(frozen, noiser_params, params, keys, fitnesses, iterinfo, es_map)
    pair = isinstance(returned, tuple) and len(returned) == 2
    result["do_updates/returns_pair"] = flag(pair)
    result["do_updates/writes_given_dict"] = flag(pair and (returned[0] is noiser_params
                                                            and noiser_params.get("opt_state") is not
                                                            given.get("opt_state")))
    result["do_updates/params_untouched"] = flag(all(same(params[k], before[k]) for k in params))
    state = returned[0].get("opt_state") if pair else None
    adam = state[0] if isinstance(state, tuple) and state and hasattr(state[0], "mu") else None
    result["opt_state/count"] = np.array([-1 if adam is None else int(out(adam.count))], dtype=np.int64)
    if adam is not None:
        result["opt_state/mu/w"], result["opt_state/nu/w"] = out(adam.mu["w"]), out(adam.nu["w"])
    w = params["w"]
    result["one_member/do_mm"] = out(cls.do_mm(frozen, noiser_params, w, keys["w"], one_member, x))
    for fn in PUBLIC:
        result[f"signature/{fn}"] = names(inspect.signature(getattr(cls, fn)).parameters)
    return result
