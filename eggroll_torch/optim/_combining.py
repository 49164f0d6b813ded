"""``chain``: run transformations one after another, their states kept as a tuple."""
from __future__ import annotations

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

    return GradientTransformation(init_fn, update_fn)
