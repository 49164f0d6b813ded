"""Checks on ``init_noiser`` arguments, run before anything is built."""
import operator


def check_count(name, value, minimum):
    """Raise unless ``value`` is an integer ``>= minimum``; ``value`` itself is stored unchanged
    by the caller (its Python or numpy type affects later dtype promotion)."""
    try:
        count = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if count < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {count}")
