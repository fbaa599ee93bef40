"""TemperatureSchedule: recipe values, per-epoch stepping, nested layers, resuming."""

import keras
import numpy as np
import pytest

from lps_keras.callbacks import TemperatureSchedule, lps_layers
from lps_keras.layers import LPSDownsampling2D
from tests.helpers import to_numpy


def _lps(name):
    return LPSDownsampling2D(hidden_channels=2, name=name, seed=1)


@pytest.fixture(scope="module")
def nested_model():
    """Two LPS layers, one of them inside a nested sub-model; 4 batches per epoch."""
    inner = keras.Sequential([keras.Input((4, 4, 2)), _lps("inner_lps")], name="inner")
    inputs = keras.Input((8, 8, 2))
    x = _lps("outer_lps")(inputs)
    x = inner(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2)(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    data = (rng.normal(size=(16, 8, 8, 2)).astype("float32"),
            rng.normal(size=(16, 2)).astype("float32"))
    return model, data


def _taus(model):
    return [float(to_numpy(layer.tau)) for layer in lps_layers(model)]


class _TauProbe(keras.callbacks.Callback):
    """Records every LPS tau at each batch, to check nothing changes within an epoch."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_begin(self, batch, logs=None):
        self.seen.append((self.epoch, _taus(self.model)))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch


@pytest.mark.parametrize(
    "epoch, tau",
    [(0, 1.0), (9, 1.0), (10, 0.85), (19, 0.85), (20, 0.7225), (40, 0.85**4), (50, 0.5),
     (249, 0.5)],
)
def test_cifar_step_recipe(epoch, tau):
    schedule = TemperatureSchedule("step", gamma=0.85, step_size=10, min_tau=0.5)
    assert schedule.tau_at(epoch) == pytest.approx(tau)
    assert TemperatureSchedule.from_recipe("cifar").tau_at(epoch) == pytest.approx(tau)
    assert TemperatureSchedule().tau_at(epoch) == pytest.approx(tau)  # defaults = recipe


@pytest.mark.parametrize(
    "epoch, tau",
    [(0, 1.0), (31, 0.75), (62, 0.5), (72, 0.275), (82, 0.05), (86, 0.03), (90, 0.01),
     (120, 0.01)],
)
def test_imagenet_piecewise_linear_recipe(epoch, tau):
    schedule = TemperatureSchedule("multistep", knots=[(62, 0.5), (82, 0.05), (90, 0.01)])
    assert schedule.tau_at(epoch) == pytest.approx(tau)
    assert TemperatureSchedule.from_recipe("imagenet").tau_at(epoch) == pytest.approx(tau)
    explicit = TemperatureSchedule("piecewise",
                                   knots=[(0, 1.0), (62, 0.5), (82, 0.05), (90, 0.01)])
    assert explicit.tau_at(epoch) == pytest.approx(tau)


def test_constant_interpolation_jumps_at_knots():
    schedule = TemperatureSchedule("multistep", knots=[(62, 0.5), (82, 0.05)],
                                   interpolation="constant", initial_tau=2.0)
    values = [schedule.tau_at(e) for e in (0, 61, 62, 81, 82, 500)]
    assert values == [2.0, 2.0, 0.5, 0.5, 0.05, 0.05]


def test_to_dict_round_trip():
    for schedule in (TemperatureSchedule.from_recipe("cifar"),
                     TemperatureSchedule.from_recipe("imagenet")):
        clone = TemperatureSchedule.from_dict(schedule.to_dict())
        assert clone.to_dict() == schedule.to_dict()
        assert [clone.tau_at(e) for e in range(100)] == [schedule.tau_at(e) for e in range(100)]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kind": "exponential"}, "Unknown temperature schedule kind"),
        ({"initial_tau": 0.0}, "initial_tau"),
        ({"min_tau": -1.0}, "min_tau"),
        ({"gamma": 0}, "gamma"),
        ({"step_size": 0}, "step_size"),
        ({"step_size": 2.5}, "step_size"),
        ({"knots": [(10, 0.5)]}, "only apply to kind='multistep'"),
        ({"kind": "multistep"}, "needs `knots`"),
        ({"kind": "multistep", "knots": [(82, 0.05), (62, 0.5)]}, "strictly increasing"),
        ({"kind": "multistep", "knots": [(62, 0.5), (62, 0.4)]}, "strictly increasing"),
        ({"kind": "multistep", "knots": [(62, 0.0)]}, "knot tau"),
        ({"kind": "multistep", "knots": [(-1, 0.5)]}, "non-negative"),
        ({"kind": "multistep", "knots": [(62, 0.5, 1)]}, "pair"),
        ({"kind": "multistep", "knots": [(62, 0.5)], "gamma": 0.5}, "only apply to kind='step'"),
        ({"kind": "multistep", "knots": [(62, 0.5)], "interpolation": "cubic"},
         "interpolation"),
        ({"kind": "multistep", "knots": [(0, 0.5)], "initial_tau": 1.0}, "contradicts"),
    ],
)
def test_bad_configs_raise(kwargs, match):
    kwargs = dict(kwargs)
    kind = kwargs.pop("kind", "step")
    with pytest.raises(ValueError, match=match):
        TemperatureSchedule(kind, **kwargs)


def test_bad_epoch_and_recipe():
    with pytest.raises(ValueError, match="epoch"):
        TemperatureSchedule().tau_at(-1)
    with pytest.raises(ValueError, match="recipe"):
        TemperatureSchedule.from_recipe("voc")


def test_finds_nested_lps_layers(nested_model):
    model, _ = nested_model
    assert sorted(layer.name for layer in lps_layers(model)) == ["inner_lps", "outer_lps"]


def test_fit_sets_tau_of_every_layer_per_epoch(nested_model):
    model, (x, y) = nested_model
    schedule = TemperatureSchedule("step", initial_tau=1.0, gamma=0.5, step_size=1,
                                   min_tau=0.1)
    probe = _TauProbe()
    history = model.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[schedule, probe])
    assert _taus(model) == pytest.approx([0.25, 0.25])
    assert history.history["tau"] == pytest.approx([1.0, 0.5, 0.25])
    # 4 batches per epoch, all with that epoch's value: nothing moves within an epoch.
    assert len(probe.seen) == 12
    for epoch, taus in probe.seen:
        assert taus == pytest.approx([schedule.tau_at(epoch)] * 2)
    # The callback has no per-batch hook at all.
    for hook in ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin",
                 "on_batch_end"):
        assert getattr(TemperatureSchedule, hook) is getattr(keras.callbacks.Callback, hook)


def test_resume_from_epoch_n(nested_model):
    model, (x, y) = nested_model
    schedule = TemperatureSchedule.from_recipe("imagenet")
    history = model.fit(x, y, epochs=73, initial_epoch=71, batch_size=16, verbose=0,
                        callbacks=[schedule])
    assert history.history["tau"] == pytest.approx([schedule.tau_at(71), 0.275])
    assert _taus(model) == pytest.approx([0.275, 0.275])


def test_warns_without_lps_layers():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.warns(UserWarning, match="no LPSDownsampling2D"):
        model.fit(np.zeros((2, 2)), np.zeros((2, 1)), epochs=1, verbose=0,
                  callbacks=[TemperatureSchedule()])
