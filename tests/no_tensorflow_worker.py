"""Run by `tests/test_backend_neutral.py` in a fresh process: JAX backend, TensorFlow hidden.

A `sys.meta_path` finder makes every `import tensorflow...` fail as if TensorFlow were not
installed; then the package root, the layers, the models, the metrics and the callbacks are
imported and used: an LPS ResNet (exact shift invariance), a DeepLabV3+ with LPS/LPU and an
LPS U-Net (exact shift equivariance), checked with `==`; one jitted `fit` step and a
`.keras` round trip. Prints `OK` and exits 0 when all hold, with TensorFlow never imported.
"""

import os
import sys

os.environ["KERAS_BACKEND"] = "jax"
os.environ["JAX_ENABLE_X64"] = "1"  # float64 sums: the bitwise guarantee (README "Backends")


class _NoTensorFlow:
    """Makes `import tensorflow` (and its submodules, tensorflow_datasets, ...) fail."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0].startswith("tensorflow"):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)",
                                      name=name)
        return None


sys.meta_path.insert(0, _NoTensorFlow())
assert not any(m.split(".")[0].startswith("tensorflow") for m in sys.modules)

import tempfile  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

import lps_keras  # noqa: E402
import lps_keras.callbacks  # noqa: E402
import lps_keras.layers  # noqa: E402
import lps_keras.metrics  # noqa: E402
import lps_keras.models  # noqa: E402

assert keras.backend.backend() == "jax", keras.backend.backend()
try:
    import tensorflow  # noqa: E402,F401
except ModuleNotFoundError:
    pass
else:
    raise AssertionError("the finder did not hide TensorFlow")

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
SHIFTS = [(1, 0), (3, 5), (-8, 1), (7, -7), (17, -13)]


def run(model, x):
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))


# 1. LPS ResNet: exact invariance of the logits.
clf = lps_keras.models.resnet20(num_classes=10, input_shape=(32, 32, 3), downsampling="lps")
x = rng.normal(size=(2, 32, 32, 3)).astype("float32")
logits = run(clf, x)
assert logits.shape == (2, 10) and np.ptp(logits) > 0
for s in SHIFTS:
    assert (run(clf, np.roll(x, s, (1, 2))) == logits).all(), ("resnet", s)

# One jitted training step, then the `.keras` round trip reproduces the outputs exactly.
clf.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=True)
clf.fit(x, np.array([1, 2]), epochs=1, batch_size=2, verbose=0,
        callbacks=[lps_keras.callbacks.TemperatureSchedule("step", initial_tau=1.0)])
trained = run(clf, x)
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "clf.keras")
    clf.save(path)
    reloaded = keras.saving.load_model(path)
assert (run(reloaded, x) == trained).all()
for s in SHIFTS:
    assert (run(reloaded, np.roll(x, s, (1, 2))) == trained).all(), ("trained resnet", s)

# The shift-consistency metric (numpy + Keras only).
assert lps_keras.metrics.shift_consistency(clf, x, mode="circular", seed=0) == 100.0


def check_equivariant(model, x, what):
    # Two shifts: the JAX run of tests/models sweeps many more; this is about running
    # without TensorFlow.
    y = run(model, x)
    assert y.shape[:3] == x.shape[:3] and np.ptp(y) > 0, (what, y.shape)
    for s in SHIFTS[1:3]:
        assert (run(model, np.roll(x, s, (1, 2))) == np.roll(y, s, (1, 2))).all(), (what, s)


# 2. DeepLabV3+ with an LPS backbone and LPU decoder: exact equivariance.
seg = lps_keras.models.deeplabv3plus(
    "resnet18", num_classes=5, input_shape=(64, 64, 3), downsampling="lps",
    upsampling="lpu", logits_channels=8, aspp_filters=16, decoder_filters=16,
    low_level_filters=8)
check_equivariant(seg, rng.normal(size=(2, 64, 64, 3)).astype("float32"), "deeplab")

# 3. U-Net with LPS down / polyphase up: exact equivariance.
net = lps_keras.models.unet((None, None, 1), channels=(4, 8, 16, 32), downsampling="lps")
check_equivariant(net, rng.normal(size=(2, 32, 32, 1)).astype("float32"), "unet")

hidden = sorted(m for m in sys.modules if m.split(".")[0].startswith("tensorflow"))
assert "tensorflow" not in sys.modules and not hidden, hidden
print("OK")
