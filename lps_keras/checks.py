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


def _is_finite_number(value):
    return is_number(value) and math.isfinite(value)


def _error(name, what, value, note="", optional=False):
    prefix = "None or " if optional else ""
    return ValueError(f"`{name}` must be {prefix}{what}{note}; got {value!r}.")


def check_choice(name, value, choices):
    """`value` if it is one of `choices`."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}; got {value!r}.")
    return value


def _at_least(name, value, minimum, what, note, optional, accept, convert, strict=False):
    if optional and value is None:
        return None
    if not accept(value) or value < minimum or (strict and value == minimum):
        raise _error(name, what, value, note, optional)
    return convert(value)


def check_int(name, value, minimum, note="", optional=False):
    """`int(value)` for an int >= `minimum` ("an int >= minimum"); None passes when
    `optional`."""
    return _at_least(name, value, minimum, f"an int >= {minimum}", note, optional, is_int, int)


def check_positive_int(name, value, note="", optional=False):
    """`int(value)` for an int >= 1 ("a positive int"); None passes when `optional`."""
    return _at_least(name, value, 1, "a positive int", note, optional, is_int, int)


def check_non_negative_int(name, value, note="", optional=False):
    """`int(value)` for an int >= 0 ("a non-negative int"); None passes when `optional`."""
    return _at_least(name, value, 0, "a non-negative int", note, optional, is_int, int)


def check_positive_number(name, value, note="", optional=False):
    """`float(value)` for a finite number > 0 ("a positive number")."""
    return _at_least(name, value, 0, "a positive number", note, optional, _is_finite_number, float,
                     strict=True)


def check_non_negative_number(name, value, note="", optional=False):
    """`float(value)` for a finite number >= 0 ("a non-negative number")."""
    return _at_least(name, value, 0, "a non-negative number", note, optional,
                     _is_finite_number, float)
