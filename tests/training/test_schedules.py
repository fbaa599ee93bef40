"""Learning-rate schedules in epochs, the factory, and weight decay that spares scorers."""

import math

import keras
import numpy as np
import pytest

from lps_keras.layers import LPSDownsampling2D
from lps_keras.training import (
    ConstantSchedule,
    CosineSchedule,
    MultiStepSchedule,
    PolySchedule,
    StepSchedule,
    exclude_from_weight_decay,
    make_lr_schedule,
)
from tests.helpers import to_numpy

SPE = 10  # steps per epoch


def _values(schedule, steps):
    return [float(to_numpy(schedule(step))) for step in steps]


def test_step_schedule_values():
    s = StepSchedule(0.1, SPE, step_size=30, gamma=0.1)
    got = _values(s, [0, 299, 300, 599, 600, 899, 900])
    np.testing.assert_allclose(got, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 1e-4], rtol=1e-6)


def test_step_schedule_exact_at_boundaries_of_long_runs():
    # 5005 steps per epoch (ImageNet, batch 256) and epoch 60: float division would blur it.
    s = StepSchedule(0.1, 5005, step_size=30, gamma=0.1)
    got = _values(s, [60 * 5005 - 1, 60 * 5005])
    np.testing.assert_allclose(got, [0.01, 0.001], rtol=1e-6)


def test_multistep_schedule_values():
    s = MultiStepSchedule(0.1, SPE, milestones=[100], gamma=0.1)  # CIFAR recipe
    np.testing.assert_allclose(_values(s, [0, 999, 1000, 2499]), [0.1, 0.1, 0.01, 0.01],
                               rtol=1e-6)
    s = MultiStepSchedule(1.0, SPE, milestones=[2, 5, 7], gamma=0.5)
    np.testing.assert_allclose(_values(s, [19, 20, 50, 70, 10**6]),
                               [1.0, 0.5, 0.25, 0.125, 0.125], rtol=1e-6)


def test_cosine_schedule_values():
    s = CosineSchedule(0.1, SPE, epochs=10, final_learning_rate=0.01)
    expected = [0.01 + 0.09 * 0.5 * (1 + math.cos(math.pi * t)) for t in (0, 0.25, 0.5, 1)]
    np.testing.assert_allclose(_values(s, [0, 25, 50, 100]), expected, rtol=1e-5)
    np.testing.assert_allclose(_values(s, [1000]), [0.01], rtol=1e-6)


def test_poly_schedule_values():
    s = PolySchedule(0.01, SPE, epochs=50)  # DeepLab: power 0.9
    total = 50 * SPE
    steps = [0, 100, 250, 499, 500, 600]
    expected = [0.01 * (1 - min(k / total, 1)) ** 0.9 for k in steps]
    np.testing.assert_allclose(_values(s, steps), expected, rtol=1e-5, atol=1e-9)


def test_linear_warmup():
    s = StepSchedule(0.1, SPE, step_size=30, gamma=0.1, warmup_epochs=2)
    # 20 warm-up steps: lr * (step + 1) / 20, then the schedule itself.
    np.testing.assert_allclose(_values(s, [0, 9, 19, 20, 299, 300]),
                               [0.005, 0.05, 0.1, 0.1, 0.1, 0.01], rtol=1e-6)
    c = ConstantSchedule(0.2, SPE, warmup_epochs=0.5)
    np.testing.assert_allclose(_values(c, [0, 4, 5, 1000]), [0.04, 0.2, 0.2, 0.2], rtol=1e-6)


def test_schedules_drive_an_optimizer_and_serialize():
    s = StepSchedule(0.1, 2, step_size=1, gamma=0.5)
    optimizer = keras.optimizers.SGD(learning_rate=s)
    var = keras.Variable(np.ones(3, "float32"))
    for _ in range(4):
        optimizer.apply_gradients([(np.zeros(3, "float32"), var)])
    # 4 steps with 2 per epoch: epoch 2, lr 0.1 * 0.5**2.
    assert float(to_numpy(optimizer.learning_rate)) == pytest.approx(0.025)

    config = optimizer.get_config()
    assert config["learning_rate"]["registered_name"] == "lps_keras>StepSchedule"
    restored = keras.optimizers.SGD.from_config(config)
    restored.build([keras.Variable(np.ones(3, "float32"))])
    restored.iterations.assign(4)
    assert float(to_numpy(restored.learning_rate)) == pytest.approx(0.025)

    steps = [0, 7, 33, 1000]
    for schedule in (
        ConstantSchedule(0.1, SPE, warmup_epochs=1),
        StepSchedule(0.1, SPE, step_size=3, gamma=0.3, warmup_epochs=0.5),
        MultiStepSchedule(0.1, SPE, milestones=[1, 2.5]),
        CosineSchedule(0.1, SPE, epochs=20, final_learning_rate=1e-3),
        PolySchedule(0.1, SPE, epochs=20, power=0.9),
    ):
        config = keras.optimizers.schedules.serialize(schedule)
        clone = keras.optimizers.schedules.deserialize(config)
        assert type(clone) is type(schedule)
        assert clone.get_config() == schedule.get_config()
        np.testing.assert_allclose(_values(clone, steps), _values(schedule, steps))


def test_factory_builds_each_schedule():
    s = make_lr_schedule({"name": "multistep", "initial_learning_rate": 0.1,
                          "milestones": [100]}, steps_per_epoch=SPE)
    assert isinstance(s, MultiStepSchedule) and s.milestones == [100]
    s = make_lr_schedule(name="poly", initial_learning_rate=0.01, epochs=50, steps_per_epoch=4)
    assert isinstance(s, PolySchedule) and s.power == 0.9
    # Keyword arguments override the dict; steps_per_epoch may live in the dict.
    s = make_lr_schedule({"name": "cosine", "initial_learning_rate": 0.1, "epochs": 5,
                          "steps_per_epoch": 3}, epochs=8)
    assert s.epochs == 8 and s.steps_per_epoch == 3
    s = make_lr_schedule({"name": "step", "initial_learning_rate": 0.1}, SPE)
    assert (s.step_size, s.gamma) == (30, 0.1)


@pytest.mark.parametrize(
    "config, match",
    [
        ({"initial_learning_rate": 0.1}, "needs a 'name'"),
        ({"name": "linear", "initial_learning_rate": 0.1}, "Unknown learning-rate schedule"),
        ({"name": "step", "initial_learning_rate": 0.1, "milestones": [3]},
         r"Unknown key\(s\) \['milestones'\]"),
        ({"name": "cosine", "initial_learning_rate": 0.1, "lr": 0.1, "epochs": 5},
         r"\['lr'\]"),
        ({"name": "cosine", "initial_learning_rate": 0.1}, r"needs \['epochs'\]"),
        ({"name": "step"}, "initial_learning_rate"),
        ({"name": "step", "initial_learning_rate": -0.1}, "initial_learning_rate"),
        ({"name": "step", "initial_learning_rate": 0.1, "step_size": 0}, "step_size"),
        ({"name": "step", "initial_learning_rate": 0.1, "gamma": 0}, "gamma"),
        ({"name": "multistep", "initial_learning_rate": 0.1, "milestones": [20, 10]},
         "strictly increasing"),
        ({"name": "multistep", "initial_learning_rate": 0.1, "milestones": []}, "empty"),
        ({"name": "poly", "initial_learning_rate": 0.1, "epochs": 5, "power": -1}, "power"),
        ({"name": "cosine", "initial_learning_rate": 0.1, "epochs": 5,
          "final_learning_rate": 1.0}, "must not exceed"),
        ({"name": "step", "initial_learning_rate": 0.1, "warmup_epochs": -1},
         "warmup_epochs"),
    ],
)
def test_factory_errors_name_the_problem(config, match):
    with pytest.raises(ValueError, match=match):
        make_lr_schedule(config, steps_per_epoch=SPE)


def test_factory_needs_steps_per_epoch_and_a_dict():
    with pytest.raises(ValueError, match="steps_per_epoch"):
        make_lr_schedule({"name": "step", "initial_learning_rate": 0.1})
    with pytest.raises(ValueError, match="steps_per_epoch"):
        make_lr_schedule({"name": "step", "initial_learning_rate": 0.1}, steps_per_epoch=0)
    with pytest.raises(ValueError, match="dict"):
        make_lr_schedule("cosine", steps_per_epoch=SPE)


# --- weight decay -------------------------------------------------------------------------


def _lps_model():
    inner = keras.Sequential(
        [keras.Input((4, 4, 4)), LPSDownsampling2D(hidden_channels=3, name="inner_lps")],
        name="inner")
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = LPSDownsampling2D(hidden_channels=3, name="outer_lps")(x)
    x = inner(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, name="dense")(x)
    return keras.Model(inputs, outputs)


def _zero_grad_step(optimizer, model):
    variables = model.trainable_variables
    before = {id(v): to_numpy(v).copy() for v in variables}
    optimizer.apply_gradients([(np.zeros(v.shape, "float32"), v) for v in variables])
    return before


def _scorer_ids(model):
    return {id(v) for layer in (model.get_layer("outer_lps"),
                                model.get_layer("inner").get_layer("inner_lps"))
            for v in layer.scorer.trainable_weights}


def test_weight_decay_skips_scorer_weights():
    model = _lps_model()
    lr, wd = 0.1, 0.5
    optimizer = keras.optimizers.SGD(lr, momentum=0.9, weight_decay=wd)
    optimizer.exclude_from_weight_decay(var_names=["bias"])  # earlier exclusions survive
    excluded = exclude_from_weight_decay(optimizer, model)
    scorer_ids = _scorer_ids(model)
    assert {id(v) for v in excluded} == scorer_ids and len(scorer_ids) == 6  # 2 x (k, b, k)
    for v in model.trainable_variables:
        if v.name == "bias":
            v.assign(np.ones(v.shape, "float32"))  # non-zero, so decay would show

    before = _zero_grad_step(optimizer, model)
    for v in model.trainable_variables:
        old, new = before[id(v)], to_numpy(v)
        if id(v) in scorer_ids or v.name == "bias":
            np.testing.assert_array_equal(new, old)  # zero gradient, no decay
        else:
            np.testing.assert_allclose(new, old * (1 - lr * wd), rtol=1e-6)  # shrinks
    assert to_numpy(model.get_layer("conv").kernel).any()


def test_without_exclusion_scorer_weights_decay_too():
    model = _lps_model()
    optimizer = keras.optimizers.SGD(0.1, weight_decay=0.5)
    before = _zero_grad_step(optimizer, model)
    scorer = [v for v in model.trainable_variables
              if id(v) in _scorer_ids(model) and v.name == "kernel"]
    for v in scorer:
        np.testing.assert_allclose(to_numpy(v), before[id(v)] * 0.95, rtol=1e-6)


def test_weight_decay_helper_errors_and_no_op():
    model = _lps_model()
    optimizer = keras.optimizers.SGD(0.1, weight_decay=1e-4)
    optimizer.build(model.trainable_variables)
    with pytest.raises(ValueError, match="already built"):
        exclude_from_weight_decay(optimizer, model)

    plain = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert exclude_from_weight_decay(keras.optimizers.SGD(0.1, weight_decay=1e-4), plain) == []

    unbuilt = LPSDownsampling2D()
    with pytest.raises(ValueError, match="not built"):
        exclude_from_weight_decay(keras.optimizers.SGD(0.1, weight_decay=1e-4), unbuilt)
