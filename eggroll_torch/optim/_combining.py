"""``chain``: run transformations one after another, their states kept as a tuple."""
from __future__ import annotations

from ._flat import NotFlat, flat_form, with_flat
from .base import GradientTransformation


def chain(*args: GradientTransformation) -> GradientTransformation:
    """Compose ``args`` left to right; the state is ``tuple(state of each)``."""
    init_fns = [t.init for t in args]
    update_fns = [t.update for t in args]

    def init_fn(params):
        return tuple(fn(params) for fn in init_fns)

    def update_fn(updates, state, params=None):
        if not isinstance(state, tuple) or len(state) != len(update_fns):
            raise ValueError(
                f"state: chain of {len(update_fns)} transformations needs a tuple of "
                f"{len(update_fns)} states; pass the state returned by this chain's init"
            )
        new_state = []
        for fn, sub_state in zip(update_fns, state):
            updates, sub_state = fn(updates, sub_state, params)
            new_state.append(sub_state)
        return updates, tuple(new_state)

    flat_fns = [flat_form(t) for t in args]

    def flat_update_fn(updates, state, params, layout):
        if not isinstance(state, tuple) or len(state) != len(flat_fns):
            raise NotFlat  # update_fn explains
        new_state = []
        for fn, sub_state in zip(flat_fns, state):
            updates, sub_state = fn(updates, sub_state, params, layout)
            new_state.append(sub_state)
        return updates, tuple(new_state)

    if all(fn is not None for fn in flat_fns):
        update_fn = with_flat(update_fn, flat_update_fn)
    return GradientTransformation(init_fn, update_fn)
