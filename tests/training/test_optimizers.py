"""`PyTorchSGD` computes `torch.optim.SGD`'s update, step for step."""

import keras
import numpy as np
import pytest

from lps_keras.training.optimizers import PyTorchSGD


def torch_sgd_reference(weights, grads_per_step, lrs, momentum, weight_decay, nesterov,
                        decayed):
    """`torch.optim.SGD` (dampening 0) in NumPy, as its documentation states it."""
    weights = [w.astype(np.float64).copy() for w in weights]
    buffers = [None] * len(weights)
    for grads, lr in zip(grads_per_step, lrs, strict=True):
        for i, g in enumerate(grads):
            g = g.astype(np.float64)
            if weight_decay and decayed[i]:
                g = g + weight_decay * weights[i]
            if momentum:
                buffers[i] = g.copy() if buffers[i] is None else momentum * buffers[i] + g
                g = g + momentum * buffers[i] if nesterov else buffers[i]
            weights[i] = weights[i] - lr * g
    return weights


class _StepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, values):
        self.values = values

    def __call__(self, step):
        return keras.ops.take(keras.ops.convert_to_tensor(self.values, "float32"),
                              keras.ops.minimum(step, len(self.values) - 1))


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_matches_torch_sgd_with_coupled_decay_and_a_learning_rate_drop(momentum, nesterov):
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (4,), (2, 2)]
    init = [rng.normal(size=s).astype("float32") for s in shapes]
    steps = 5
    grads = [[rng.normal(size=s).astype("float32") for s in shapes] for _ in range(steps)]
    lrs = [0.1, 0.1, 0.01, 0.01, 0.01]  # a milestone: the whole buffer sees the new rate
    variables = [keras.Variable(w) for w in init]
    optimizer = PyTorchSGD(_StepSchedule(lrs), momentum=momentum, nesterov=nesterov,
                           weight_decay=5e-2)
    optimizer.exclude_from_weight_decay(var_list=[variables[1]])  # like an LPS scorer
    for step_grads in grads:
        optimizer.apply_gradients(zip(step_grads, variables, strict=True))
    expected = torch_sgd_reference(init, grads, lrs, momentum, 5e-2, nesterov,
                                   decayed=[True, False, True])
    for variable, want in zip(variables, expected, strict=True):
        np.testing.assert_allclose(variable.numpy(), want, rtol=1e-6, atol=1e-7)


def test_differs_from_keras_decoupled_decay():
    # The reason it exists: with momentum, Keras' decoupled decay is a different update.
    init = np.ones((4,), "float32")
    grads = np.zeros((4,), "float32")
    ours, theirs = keras.Variable(init), keras.Variable(init)
    coupled = PyTorchSGD(0.1, momentum=0.9, weight_decay=0.1)
    decoupled = keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=0.1)
    for _ in range(10):
        coupled.apply_gradients([(grads, ours)])
        decoupled.apply_gradients([(grads, theirs)])
    want = torch_sgd_reference([init], [[grads]] * 10, [0.1] * 10, 0.9, 0.1, False, [True])
    np.testing.assert_allclose(ours.numpy(), want[0], rtol=1e-6)
    assert abs(float(theirs.numpy()[0]) - float(ours.numpy()[0])) > 0.1


def test_config_round_trip_and_bad_arguments():
    optimizer = PyTorchSGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
    clone = PyTorchSGD.from_config(optimizer.get_config())
    assert (clone.momentum, clone.nesterov, clone.l2) == (0.9, True, 1e-4)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, PyTorchSGD) and restored.l2 == 1e-4
    with pytest.raises(ValueError, match="`weight_decay` must be a non-negative number"):
        PyTorchSGD(0.1, weight_decay=-1.0)
    with pytest.raises(ValueError, match="nesterov"):
        PyTorchSGD(0.1, nesterov=True)
