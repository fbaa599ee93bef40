"""TorchBatchNormalization: Keras' normalisation, PyTorch's moving-variance update."""

import keras
import numpy as np
import pytest

from lps_keras.layers import TorchBatchNormalization


def torch_batchnorm_step(x, mean, var, momentum=0.1):
    """`torch.nn.BatchNorm2d`'s running-statistics update (NHWC input), as documented."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    return ((1 - momentum) * mean + momentum * flat.mean(0),
            (1 - momentum) * var + momentum * flat.var(0, ddof=1))


@pytest.mark.parametrize("shape", [(4, 5, 6, 3), (2, 1, 1, 7), (8, 3, 3, 2)])
def test_updates_like_pytorch_and_normalises_like_keras(shape):
    rng = np.random.default_rng(sum(shape))
    ours = TorchBatchNormalization(momentum=0.9, epsilon=1e-5)
    keras_bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    mean, var = np.zeros(shape[-1]), np.ones(shape[-1])
    for _ in range(3):
        x = rng.normal(2.0, 3.0, size=shape).astype("float32")
        y = np.asarray(ours(x, training=True))
        np.testing.assert_array_equal(y, np.asarray(keras_bn(x, training=True)))
        mean, var = torch_batchnorm_step(x, mean, var)
    np.testing.assert_allclose(np.asarray(ours.moving_mean), mean, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(ours.moving_variance), var, rtol=1e-5)
    # Keras' own update differs by the n / (n - 1) factor: the reason this layer exists.
    assert not np.allclose(np.asarray(keras_bn.moving_variance), var, rtol=1e-5)


def test_inference_and_frozen_layers_leave_the_statistics_alone():
    x = np.random.default_rng(0).normal(size=(4, 3, 3, 2)).astype("float32")
    bn = TorchBatchNormalization()
    bn(x, training=False)
    np.testing.assert_array_equal(np.asarray(bn.moving_variance), np.ones(2))
    bn.trainable = False
    bn(x, training=True)
    np.testing.assert_array_equal(np.asarray(bn.moving_variance), np.ones(2))


def test_round_trip_and_synchronized_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((4, 4, 3)), TorchBatchNormalization(epsilon=1e-5)])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.layers[0]) is TorchBatchNormalization
    with pytest.raises(ValueError, match="synchronized"):
        TorchBatchNormalization(synchronized=True)
