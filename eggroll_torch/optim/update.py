"""``apply_updates``: add updates to params, keeping each param's dtype."""
from __future__ import annotations

from .. import tree


def apply_updates(params, updates):
    """``params + updates`` leaf by leaf, each sum cast back to its param's dtype (new tensors)."""
    return tree.map(lambda p, u: (p + u).to(p.dtype), params, updates)
