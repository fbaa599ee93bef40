"""The shared argument checks of lps_keras.checks."""

import numpy as np
import pytest

from lps_keras import checks


def test_ints_reject_bools_and_floats_and_convert_numpy():
    assert checks.check_int("n", np.int64(3), 0) == 3
    assert type(checks.check_positive_int("n", np.int32(2))) is int
    for bad in (True, 1.0, "1", -1):
        with pytest.raises(ValueError, match=r"`n` must be an int >= 0; got"):
            checks.check_int("n", bad, 0)
    with pytest.raises(ValueError, match=r"`n` must be a positive int \(why\); got 0\."):
        checks.check_positive_int("n", 0, note=" (why)")
    with pytest.raises(ValueError, match=r"`n` must be None or a positive int; got 0\."):
        checks.check_positive_int("n", 0, optional=True)
    assert checks.check_positive_int("n", None, optional=True) is None
    with pytest.raises(ValueError, match=r"`n` must be a non-negative int; got -1\."):
        checks.check_non_negative_int("n", -1)


def test_numbers_are_finite_and_not_bool():
    assert checks.check_positive_number("x", 2) == 2.0
    assert checks.check_non_negative_number("x", 0) == 0.0
    for bad in (0, -1.0, float("inf"), float("nan"), True, "1"):
        with pytest.raises(ValueError, match=r"`x` must be a positive number; got"):
            checks.check_positive_number("x", bad)
    with pytest.raises(ValueError, match=r"`x` must be a non-negative number; got -1"):
        checks.check_non_negative_number("x", -1)


def test_choice_names_the_choices():
    assert checks.check_choice("mode", "a", ["a", "b"]) == "a"
    with pytest.raises(ValueError, match=r"`mode` must be one of \('a', 'b'\); got 'c'\."):
        checks.check_choice("mode", "c", ["a", "b"])
