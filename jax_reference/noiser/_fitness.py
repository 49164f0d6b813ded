"""Fitness shaping shared by the EGGROLL, OpenES, alternating-EGGROLL and sparse noisers."""
import jax.numpy as jnp

VARIANCE_EPS = 1e-5


def standardize_fitnesses(raw_scores, group_size):
    """Centre and scale raw scores ``(N,)``; returns ``(N,)``.

    ``group_size == 0``: ``(r - mean(r)) / sqrt(var(r) + 1e-5)``, population variance (ddof=0),
    so a constant population gives zeros. ``group_size > 0``: each consecutive group of
    ``group_size`` members is centred on its own mean but divided by the GLOBAL
    ``sqrt(var(r) + 1e-5)``.
    """
    if group_size == 0:
        return (raw_scores - jnp.mean(raw_scores, keepdims=True)) / jnp.sqrt(
            jnp.var(raw_scores, keepdims=True) + VARIANCE_EPS
        )
    if raw_scores.size % group_size != 0:
        raise ValueError(
            f"raw_scores has {raw_scores.size} entries, not a multiple of group_size={group_size}; "
            "make the population a whole number of groups or use group_size=0"
        )
    groups = raw_scores.reshape((-1, group_size))
    centred = groups - jnp.mean(groups, axis=-1, keepdims=True)
    return (centred / jnp.sqrt(jnp.var(raw_scores, keepdims=True) + VARIANCE_EPS)).ravel()
