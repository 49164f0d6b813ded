"""Checks on ``init_noiser`` arguments, run before anything is built."""
import operator


def check_count(name, value, minimum):
    """``value`` as an int, raising if it is not an integer ``>= minimum``."""
    try:
        count = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if count < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {count}")
    return count
