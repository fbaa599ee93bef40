"""Interleaved timing: every case gets its warm-up and repeats, and one failing case is
recorded without stopping the others."""

import pytest

from benchmarks.timing import interleaved_median_seconds


def test_interleaved_rounds_call_each_case_and_keep_errors_apart():
    calls = []

    def case(name):
        def fn(x):
            calls.append(name)
            return x
        return fn

    def broken(x):
        calls.append("broken")
        raise RuntimeError("does not compile")

    cases = {"a": (case("a"), (1,)), "b": (case("b"), (2,)), "broken": (broken, (3,))}
    medians, errors = interleaved_median_seconds(cases, warmup=2, repeats=3)
    assert set(medians) == {"a", "b"} and all(t >= 0 for t in medians.values())
    assert set(errors) == {"broken"} and "does not compile" in str(errors["broken"])
    assert calls.count("a") == calls.count("b") == 2 + 3
    assert calls.count("broken") == 1  # not retried after its warm-up failed
    # Timed calls alternate between the cases (rounds), after all warm-ups.
    assert calls[-6:] == ["a", "b"] * 3


def test_interleaved_rejects_bad_counts():
    with pytest.raises(ValueError, match="repeats >= 1"):
        interleaved_median_seconds({}, warmup=1, repeats=0)
    with pytest.raises(ValueError, match="warmup >= 1"):  # the first call compiles
        interleaved_median_seconds({}, warmup=0, repeats=1)
