"""Fitness shaping: raw scores of the population -> the weights of its noise in the update."""
import jax.numpy as jnp

VARIANCE_EPS = 1e-5
STD_EPS = 1e-8


def standardize_fitnesses(raw_scores, group_size):
    """``(raw - mean) / sqrt(var + 1e-5)`` of raw scores ``(N,)``; returns ``(N,)``.

    ``group_size == 0``: mean and (population, ddof 0) variance of all N scores; constant scores
    give zeros. ``group_size > 0``: each group of ``group_size`` consecutive members subtracts
    its own mean but all divide by the GLOBAL ``sqrt(var + 1e-5)``. ``N`` must be a multiple of it.
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


def baseline_fitnesses(raw_scores, group_size):
    """EggRollBS's per-direction fitnesses ``(G,)`` from ``(Q * G,)`` or ``(Q, G)`` raw scores.

    Row ``q`` holds one group; its first member (unperturbed) is the baseline: ``Z = (S - S[:, :1]) /
    (std(row) + 1e-8)`` (population std), columns 0 and 1 (the unperturbed members) are zeroed and
    the result is the mean over rows. Note the output has length ``G``, not ``N``.
    """
    group_size = int(group_size)
    if group_size < 1:
        raise ValueError("EggRollBS.convert_fitnesses needs group_size >= 1; pass group_size to init_noiser")
    if raw_scores.ndim == 1:
        if raw_scores.size % group_size != 0:
            raise ValueError(f"raw_scores has {raw_scores.size} entries, not a multiple of group_size={group_size}")
        rows = raw_scores.reshape(raw_scores.size // group_size, group_size)
    else:
        rows = raw_scores
        if rows.shape[1] != group_size:
            raise ValueError(f"raw_scores of shape {rows.shape} must have group_size={group_size} columns")
    shaped = (rows - rows[:, :1]) / (jnp.std(rows, axis=1, keepdims=True) + STD_EPS)
    shaped = shaped.at[:, 0].set(0.0).at[:, 1].set(0.0)
    return jnp.mean(shaped, axis=0)
