"""Fixtures shared by the whole suite; helpers live in `tests/helpers.py`.

Backends: the suite runs on TensorFlow (the default), and `tests/layers` and `tests/models`
also run with `KERAS_BACKEND=jax` (README "Set-up", second command). Tests that exercise
TensorFlow itself carry the `tf_only` marker (`pytestmark = pytest.mark.tf_only` for a
module) and are skipped, with that reason shown in the `-ra` summary, on any other backend:
SavedModel export and serving (`model.export`, `serve_in_fresh_process`) and
`tf.distribute` (MirroredStrategy). Graph/XLA checks run on every backend through
`tests.helpers.compiled` (`tf.function(jit_compile=True)` or `jax.jit`), and gradients
through `tests.helpers.gradients`. Under JAX, float64 is switched on (`JAX_ENABLE_X64=1`,
before JAX is imported): the layers accumulate their selection sums in float64, which the
bitwise shift tests rely on (README "Backends").
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_ENABLE_X64", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import lps_keras  # noqa: E402,F401  (registers the layers)

TF_ONLY_REASON = ("tf_only: needs the TensorFlow backend (SavedModel export/serving or "
                  "tf.distribute); running on the {} backend")


def pytest_collection_modifyitems(config, items):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return
    skip = pytest.mark.skip(reason=TF_ONLY_REASON.format(backend))
    for item in items:
        if "tf_only" in item.keywords:
            item.add_marker(skip)


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
