import keras
import numpy as np

from lps_keras.layers import InvariantGlobalAveragePooling2D
from tests.helpers import run_layer_test, to_numpy


def test_layer_contract(tmp_path):
    run_layer_test(InvariantGlobalAveragePooling2D, {}, (2, 6, 5, 3), [(2, 3)], tmp_path,
                   train=False)
    run_layer_test(InvariantGlobalAveragePooling2D, {"keepdims": True}, (2, 4, 4, 3),
                   [(2, 1, 1, 3)], tmp_path)


def test_gradients_flow_through_the_float64_mean():
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    outputs = keras.layers.Dense(1)(InvariantGlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = to_numpy(model.layers[1].kernel).copy()
    model.fit(np.ones((4, 6, 6, 2), np.float32), np.full((4, 1), 3.0, np.float32), verbose=0)
    assert np.all(np.isfinite(to_numpy(model.layers[1].kernel)))
    assert np.any(to_numpy(model.layers[1].kernel) != before)


def test_circular_shifts_give_bitwise_equal_means(rng):
    x = (rng.normal(size=(32, 8, 8, 64)) * 10.0 ** rng.uniform(-3, 3, (32, 8, 8, 64)))
    x = np.maximum(x, 0).astype(np.float32)  # post-ReLU features
    pool, keras_pool = InvariantGlobalAveragePooling2D(), keras.layers.GlobalAveragePooling2D()
    reference = to_numpy(pool(x))
    np.testing.assert_allclose(reference, x.astype(np.float64).mean((1, 2)), rtol=1e-6)
    keras_differs = 0
    for shift in [(1, 0), (0, 1), (3, 5), (-2, 7), (4, 4)]:
        rolled = np.roll(x, shift, (1, 2))
        np.testing.assert_array_equal(to_numpy(pool(rolled)), reference)
        keras_differs += int(np.any(to_numpy(keras_pool(rolled)) != to_numpy(keras_pool(x))))
    assert keras_differs > 0  # the float32 mean does change with the order


def test_mixed_precision_output_dtype():
    pool = InvariantGlobalAveragePooling2D(dtype="mixed_float16")
    y = pool(np.ones((1, 4, 4, 2), np.float16))
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
