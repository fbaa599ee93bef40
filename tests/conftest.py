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

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_ENABLE_X64", "1")
if os.environ.get("KERAS_BACKEND") == "jax" and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    # Eager JAX compiles every op for every new shape, and most of the JAX run's time goes
    # to compiling the same small programs again in each xdist worker: one compilation
    # cache for the session (the workers inherit this environment) lets them share. It
    # stores the executables XLA built, so results are the same; it is removed at exit.
    _jax_cache = tempfile.mkdtemp(prefix="lps_keras_jax_cache_")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _jax_cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    atexit.register(shutil.rmtree, _jax_cache, ignore_errors=True)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import lps_keras  # noqa: E402,F401  (registers the layers)

TF_ONLY_REASON = ("tf_only: needs the TensorFlow backend (SavedModel export/serving, "
                  "tf.distribute or the TF-profiler MAC count); running on the {} backend")


# Open JAX gaps: real differences, not TensorFlow-only tests. Marked xfail under JAX, with
# the reason shown by `-ra`, until fixed; the TensorFlow run still requires them.
JAX_KNOWN_FAILURES = {
    "tests/models/test_resnet.py::test_official_switches_keep_exact_invariance"
    "[settings0-resnet18-cifar]": "a float64 model (the test's `float64` fixture): its "
        "float64 per-pixel scorer terms have no wider type to be summed in, and on JAX the "
        "stage-3 scorer of this seed gives four logits within 1 ulp whose order follows "
        "the summation order, so a selection flips (float32 models are exact on JAX: "
        "`tests/layers/test_selection_exactness.py`)",
}


def pytest_collection_modifyitems(config, items):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return
    skip = pytest.mark.skip(reason=TF_ONLY_REASON.format(backend))
    for item in items:
        if "tf_only" in item.keywords:
            item.add_marker(skip)
        elif backend == "jax":
            for prefix, reason in JAX_KNOWN_FAILURES.items():
                if item.nodeid.startswith(prefix):
                    item.add_marker(pytest.mark.xfail(reason=f"known JAX gap: {reason}",
                                                      strict=False))


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
