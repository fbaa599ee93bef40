"""Fixtures shared by the whole suite; helpers live in `tests/helpers.py`."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import lps_keras  # noqa: E402,F401  (registers the layers)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seed_everything():
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def float64():
    """Builds models in float64 for exactness checks: float32 logits of random-weight
    ResNets reach 1e2, so rounding alone is ~1e-5 there; in float64 a difference above
    1e-4 can only be a real failure of invariance. `_seed_everything` restores float32."""
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    return "float64"
