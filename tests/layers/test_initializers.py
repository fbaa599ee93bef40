import keras
import numpy as np
import pytest

from lps_keras.layers import TorchUniform
from tests.helpers import to_numpy


@pytest.mark.parametrize("shape,fan_in,expected_fan_in", [
    ((3, 3, 64, 256), None, 3 * 3 * 64),  # conv kernel, HWIO
    ((300, 500), None, 300),  # dense kernel
    ((150000,), 27, 27),  # a bias, given its kernel's fan_in
])
def test_distribution_is_pytorch_default(shape, fan_in, expected_fan_in):
    values = to_numpy(TorchUniform(fan_in=fan_in, seed=1)(shape)).ravel().astype(np.float64)
    bound = 1.0 / np.sqrt(expected_fan_in)
    assert values.size >= 100000
    assert values.max() <= bound and values.min() >= -bound
    assert values.max() > 0.99 * bound and values.min() < -0.99 * bound  # bounds hit
    assert abs(values.mean()) < 0.01 * bound
    np.testing.assert_allclose(values.var(), bound ** 2 / 3, rtol=0.02)


def test_bias_without_fan_in_is_refused():
    with pytest.raises(ValueError, match="fan_in"):
        TorchUniform()((16,))


@pytest.mark.parametrize("fan_in", [0, -3, 2.5, True])
def test_fan_in_is_validated(fan_in):
    with pytest.raises(ValueError, match="fan_in"):
        TorchUniform(fan_in=fan_in)


@pytest.mark.parametrize("fan_in", [None, 18])
def test_serialisation_round_trip(fan_in):
    init = TorchUniform(fan_in=fan_in, seed=5)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(init))
    assert isinstance(clone, TorchUniform)
    assert clone.get_config() == init.get_config() == {"fan_in": fan_in, "seed": 5}
    np.testing.assert_array_equal(to_numpy(clone((3, 3, 2, 4))), to_numpy(init((3, 3, 2, 4))))


def test_saved_layer_reloads_with_its_initializers(tmp_path):
    layer = keras.layers.Conv2D(4, 3, kernel_initializer=TorchUniform(),
                                bias_initializer=TorchUniform(fan_in=18))
    model = keras.Sequential([keras.Input((6, 6, 2)), layer])
    path = str(tmp_path / "m.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path).layers[0]
    assert reloaded.bias_initializer.fan_in == 18
    assert isinstance(reloaded.kernel_initializer, TorchUniform)
