"""Training callbacks: the Gumbel-softmax temperature schedule of LPS layers.

The temperature `tau` of every `LPSDownsampling2D` is a non-trainable variable; the
`TemperatureSchedule` callback sets it at the start of each epoch from the epoch index
alone, so a run resumed with `fit(..., initial_epoch=N)` continues the same schedule. It
never changes `tau` per batch (the reference implementation stepped its schedule per
batch by mistake, annealing hundreds of times too fast).

The schedule math (`tau_at`, validation, recipes) is `lps_keras.training.temperature`;
this module adds the Keras hooks, and `train.py`'s loop calls the same `set_epoch`.
"""

import warnings

import keras

from lps_keras.layers import lps_layers  # re-exported: it lived here before
from lps_keras.training import temperature as _temperature
from lps_keras.training.temperature import TauSchedule

# Kept importable from here, where they lived before.
KINDS = _temperature.TAU_KINDS
INTERPOLATIONS = _temperature.INTERPOLATIONS
RECIPES = _temperature.TAU_RECIPES
_ALIASES = _temperature._ALIASES

__all__ = ["TemperatureSchedule", "lps_layers"]


class TemperatureSchedule(TauSchedule, keras.callbacks.Callback):
    """Anneals the temperature `tau` of every `LPSDownsampling2D`, once per epoch.

    At the start of epoch `e` (0-based, as Keras counts) it assigns `tau_at(e)` to the
    `tau` variable of each LPS layer in the model, nested sub-models included, and at the
    end of the epoch records the value in `logs["tau"]` (so it appears in `History`).

    Kinds:

    - `"step"`: `max(initial_tau * gamma ** (epoch // step_size), min_tau)`. Defaults are
      the CIFAR recipe: x0.85 every 10 epochs, floor 0.5.
    - `"multistep"` (alias `"piecewise"`): `knots` is a list of `(epoch, tau)` pairs with
      increasing epochs. With `interpolation="linear"`, tau moves linearly between knots;
      with `"constant"` it jumps at each knot. If the first knot is after epoch 0, the
      schedule starts from `(0, initial_tau)`. After the last knot tau stays constant.
      ImageNet recipe: `knots=[(62, 0.5), (82, 0.05), (90, 0.01)]`, linear, from 1.0.

    `TemperatureSchedule.from_recipe("cifar")` / `("imagenet")` build the reference
    recipes of the LPS paper (`RECIPES`; docs/design.md, section 6).

    Args:
        kind: `"step"` or `"multistep"`.
        initial_tau: tau at epoch 0 (default 1.0).
        gamma: `"step"` only; decay factor (default 0.85).
        step_size: `"step"` only; epochs between decays (default 10).
        min_tau: `"step"` only; floor (default 0.5; None for no floor).
        knots: `"multistep"` only; list of `(epoch, tau)`.
        interpolation: `"multistep"` only; `"linear"` (default) or `"constant"`.
        verbose: if truthy, print the value at the start of each epoch.

    Example:

    >>> schedule = TemperatureSchedule("multistep", knots=[(62, 0.5), (82, 0.05), (90, 0.01)])
    >>> [round(schedule.tau_at(e), 3) for e in (0, 31, 62, 72, 90, 120)]
    [1.0, 0.75, 0.5, 0.275, 0.01, 0.01]
    >>> model.fit(x, y, epochs=90, callbacks=[schedule])  # doctest: +SKIP
    """

    def __init__(self, kind="step", *, initial_tau=None, gamma=None, step_size=None,
                 min_tau=None, knots=None, interpolation=None, verbose=0):
        keras.callbacks.Callback.__init__(self)
        TauSchedule.__init__(self, kind, initial_tau=initial_tau, gamma=gamma,
                             step_size=step_size, min_tau=min_tau, knots=knots,
                             interpolation=interpolation)
        self.verbose = verbose
        self._lps_layers = None

    def to_dict(self):
        """Plain-dict config; `TemperatureSchedule.from_dict(d)` rebuilds the schedule."""
        config = TauSchedule.to_dict(self)
        config["verbose"] = self.verbose
        return config

    get_config = to_dict

    def _find_layers(self):
        layers = lps_layers(self.model)
        if not layers:
            warnings.warn(
                "TemperatureSchedule: the model has no LPSDownsampling2D layer, so there is "
                "no temperature to schedule; the callback does nothing.",
                stacklevel=4,
            )
        unbuilt = [layer.name for layer in layers if not hasattr(layer, "tau")]
        if unbuilt:
            raise ValueError(
                f"TemperatureSchedule: LPS layers {unbuilt} are not built yet (no `tau` "
                "variable). Build the model (call it on a batch or `model.build(shape)`) "
                "before training."
            )
        return layers

    def on_train_begin(self, logs=None):
        self._lps_layers = None

    def set_epoch(self, epoch, layers=None):
        """Assigns `tau_at(epoch)` to the `tau` of every LPS layer; returns the value.

        `layers` defaults to the LPS layers of the callback's model (found once per
        `fit`); the training loop of `train.py` passes its own list.
        """
        if layers is None:
            if self._lps_layers is None:
                self._lps_layers = self._find_layers()
            layers = self._lps_layers
        value = self.tau_at(epoch)
        for layer in layers:
            layer.tau.assign(value)
        return value

    def on_epoch_begin(self, epoch, logs=None):
        value = self.set_epoch(epoch)
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: TemperatureSchedule sets tau to {value:.6g}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["tau"] = self.tau_at(epoch)
