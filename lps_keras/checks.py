"""Argument checks shared by the whole package, with messages that say what was expected.

Every check returns the value (converted: `int`, `float`) and raises `ValueError` with a
message of the form "`name` must be <what>[<note>]; got <value!r>.". `bool` is never
accepted as a number. Imports nothing from `lps_keras`, so the layers can use it.
"""

import math
import numbers


def is_int(value):
    """An integral number that is not a bool (Python or NumPy)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value):
    """A real number that is not a bool (Python or NumPy)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _error(name, what, value, note="", optional=False):
    prefix = "None or " if optional else ""
    return ValueError(f"`{name}` must be {prefix}{what}{note}; got {value!r}.")


def check_choice(name, value, choices):
    """`value` if it is one of `choices`."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}; got {value!r}.")
    return value


def check_int(name, value, minimum, note="", optional=False):
    """`int(value)` for an int >= `minimum` ("an int >= minimum"); None passes when
    `optional`."""
    if optional and value is None:
        return None
    if not is_int(value) or value < minimum:
        raise _error(name, f"an int >= {minimum}", value, note, optional)
    return int(value)


def check_positive_int(name, value, note="", optional=False):
    """`int(value)` for an int >= 1 ("a positive int"); None passes when `optional`."""
    if optional and value is None:
        return None
    if not is_int(value) or value < 1:
        raise _error(name, "a positive int", value, note, optional)
    return int(value)


def check_non_negative_int(name, value, note="", optional=False):
    """`int(value)` for an int >= 0 ("a non-negative int"); None passes when `optional`."""
    if optional and value is None:
        return None
    if not is_int(value) or value < 0:
        raise _error(name, "a non-negative int", value, note, optional)
    return int(value)


def check_positive_number(name, value, note="", optional=False):
    """`float(value)` for a finite number > 0 ("a positive number")."""
    if optional and value is None:
        return None
    if not is_number(value) or not math.isfinite(value) or value <= 0:
        raise _error(name, "a positive number", value, note, optional)
    return float(value)


def check_non_negative_number(name, value, note="", optional=False):
    """`float(value)` for a finite number >= 0 ("a non-negative number")."""
    if optional and value is None:
        return None
    if not is_number(value) or not math.isfinite(value) or value < 0:
        raise _error(name, "a non-negative number", value, note, optional)
    return float(value)
