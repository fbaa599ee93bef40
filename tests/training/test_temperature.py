"""The tau schedule math (lps_keras.training.temperature), its config selector and the one
"set tau for this epoch" path shared by the Keras callback and train.py's loop."""

import warnings

import keras
import pytest

from lps_keras.callbacks import TemperatureSchedule
from lps_keras.layers import LPSDownsampling2D, lps_layers
from lps_keras.training import TAU_RECIPES, TauSchedule, builders, make_tau_schedule
from lps_keras.training.temperature import tau_config
from tests.helpers import to_numpy


@pytest.mark.parametrize("recipe", sorted(TAU_RECIPES))
def test_callback_is_the_pure_schedule(recipe):
    pure = TauSchedule.from_recipe(recipe)
    callback = TemperatureSchedule.from_recipe(recipe)
    assert isinstance(callback, TauSchedule)
    assert [pure.tau_at(e) for e in range(120)] == [callback.tau_at(e) for e in range(120)]


def test_name_selects_a_recipe_with_overrides():
    schedule = make_tau_schedule({"name": "cifar", "step_size": 2})
    assert (schedule.kind, schedule.gamma, schedule.step_size, schedule.min_tau) == (
        "step", 0.85, 2, 0.5)
    assert make_tau_schedule(name="imagenet").tau_at(72) == pytest.approx(0.275)


def test_name_selects_a_kind():
    schedule = make_tau_schedule({"name": "multistep", "knots": [(2, 0.5)]})
    assert [schedule.tau_at(e) for e in range(3)] == [1.0, 0.75, 0.5]
    with pytest.raises(ValueError, match="Unknown tau_schedule name"):
        tau_config({"name": "exponential"})


def _train_config(tau_schedule):
    return {"tau_schedule": tau_schedule}


def test_builder_reads_name_and_deprecated_kind():
    explicit = {"initial_tau": 1.0, "gamma": 0.85, "step_size": 5, "min_tau": 0.5}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = builders.build_tau_schedule(_train_config({"name": "step", **explicit}))
        recipe = builders.build_tau_schedule(_train_config({"name": "cifar", "step_size": 5}))
    # A run directory's config.json written before the rename.
    with pytest.warns(DeprecationWarning, match="'kind' is deprecated"):
        old = builders.build_tau_schedule(_train_config({"kind": "step", **explicit}))
    assert isinstance(new, TemperatureSchedule)
    assert new.to_dict() == old.to_dict() == recipe.to_dict()
    with pytest.raises(ValueError, match="keep only"):
        builders.build_tau_schedule(_train_config({"name": "step", "kind": "multistep"}))
    assert builders.build_tau_schedule(_train_config({})) is None


def test_set_epoch_assigns_the_given_layers():
    model = keras.Sequential([keras.Input((8, 8, 2)),
                              LPSDownsampling2D(hidden_channels=2, seed=1),
                              LPSDownsampling2D(hidden_channels=2, seed=2)])
    schedule = TemperatureSchedule.from_recipe("imagenet")
    layers = lps_layers(model)
    assert schedule.set_epoch(72, layers) == pytest.approx(0.275)
    assert [float(to_numpy(layer.tau)) for layer in layers] == pytest.approx([0.275] * 2)
    schedule.set_model(model)
    assert schedule.set_epoch(0) == 1.0
    assert [float(to_numpy(layer.tau)) for layer in layers] == [1.0, 1.0]
