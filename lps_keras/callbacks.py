"""Training callbacks: the Gumbel-softmax temperature schedule of LPS layers.

The temperature `tau` of every `LPSDownsampling2D` is a non-trainable variable; the
`TemperatureSchedule` callback sets it at the start of each epoch from the epoch index
alone, so a run resumed with `fit(..., initial_epoch=N)` continues the same schedule. It
never changes `tau` per batch (the reference implementation stepped its schedule per
batch by mistake, annealing hundreds of times too fast).
"""

import math
import numbers
import warnings

import keras

from lps_keras.layers import lps_layers  # re-exported: it lived here before

KINDS = ("step", "multistep")
INTERPOLATIONS = ("linear", "constant")
_ALIASES = {"piecewise": "multistep"}

# Recipes of DESIGN section 6.
RECIPES = {
    "cifar": {"kind": "step", "initial_tau": 1.0, "gamma": 0.85, "step_size": 10,
              "min_tau": 0.5},
    "imagenet": {"kind": "multistep", "initial_tau": 1.0,
                 "knots": [(62, 0.5), (82, 0.05), (90, 0.01)], "interpolation": "linear"},
}

__all__ = ["TemperatureSchedule", "lps_layers"]


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_positive(name, value):
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a positive number (a temperature); got {value!r}.")
    return float(value)


class TemperatureSchedule(keras.callbacks.Callback):
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
    recipes (DESIGN section 6).

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
        super().__init__()
        if not isinstance(kind, str) or _ALIASES.get(kind, kind) not in KINDS:
            raise ValueError(
                f"Unknown temperature schedule kind {kind!r}; use one of "
                f"{KINDS + tuple(_ALIASES)}."
            )
        kind = _ALIASES.get(kind, kind)
        self.kind = kind
        self.verbose = verbose
        self.gamma = self.step_size = self.min_tau = None
        self.knots = self.interpolation = None
        if kind == "step":
            self._reject_unused(knots=knots, interpolation=interpolation)
            self.initial_tau = _check_positive(
                "initial_tau", 1.0 if initial_tau is None else initial_tau)
            self.gamma = _check_positive("gamma", 0.85 if gamma is None else gamma)
            step_size = 10 if step_size is None else step_size
            if isinstance(step_size, bool) or not isinstance(step_size, numbers.Integral) \
                    or step_size < 1:
                raise ValueError(
                    f"`step_size` must be a positive int (epochs between decays); got "
                    f"{step_size!r}."
                )
            self.step_size = int(step_size)
            self.min_tau = 0.5 if min_tau is None else _check_positive("min_tau", min_tau)
        else:
            self._reject_unused(gamma=gamma, step_size=step_size, min_tau=min_tau)
            self.interpolation = "linear" if interpolation is None else interpolation
            if self.interpolation not in INTERPOLATIONS:
                raise ValueError(
                    f"`interpolation` must be one of {INTERPOLATIONS}; got {interpolation!r}."
                )
            self.knots = self._check_knots(knots)
            if self.knots[0][0] == 0:
                if initial_tau is not None and float(initial_tau) != self.knots[0][1]:
                    raise ValueError(
                        f"`initial_tau={initial_tau!r}` contradicts the knot (0, "
                        f"{self.knots[0][1]}); give the epoch-0 value only once."
                    )
                self.initial_tau = self.knots[0][1]
            else:
                self.initial_tau = _check_positive(
                    "initial_tau", 1.0 if initial_tau is None else initial_tau)
        self._lps_layers = None

    def _reject_unused(self, **kwargs):
        unused = sorted(name for name, value in kwargs.items() if value is not None)
        if unused:
            other = "step" if self.kind == "multistep" else "multistep"
            raise ValueError(
                f"{unused} only apply to kind={other!r}; they have no effect with "
                f"kind={self.kind!r}. Remove them or change `kind`."
            )

    @staticmethod
    def _check_knots(knots):
        if knots is None or len(knots) == 0:
            raise ValueError(
                "kind='multistep' needs `knots`, a list of (epoch, tau) pairs, e.g. "
                "[(62, 0.5), (82, 0.05), (90, 0.01)]."
            )
        checked = []
        for knot in knots:
            if not isinstance(knot, (tuple, list)) or len(knot) != 2:
                raise ValueError(f"Each knot must be an (epoch, tau) pair; got {knot!r}.")
            epoch, tau = knot
            if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
                raise ValueError(f"Knot epochs must be non-negative ints; got {epoch!r}.")
            checked.append((int(epoch), _check_positive("knot tau", tau)))
        epochs = [epoch for epoch, _ in checked]
        if any(b <= a for a, b in zip(epochs[:-1], epochs[1:], strict=True)):
            raise ValueError(
                f"Knot epochs must be strictly increasing (sorted, no repeats); got {epochs}."
            )
        return checked

    @classmethod
    def from_recipe(cls, name, **overrides):
        """The reference schedule `"cifar"` or `"imagenet"` (DESIGN section 6)."""
        if name not in RECIPES:
            raise ValueError(f"Unknown recipe {name!r}; use one of {tuple(RECIPES)}.")
        config = dict(RECIPES[name])
        config.update(overrides)
        return cls.from_dict(config)

    def tau_at(self, epoch):
        """Temperature for the 0-based `epoch` (a pure function of the epoch index)."""
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"`epoch` must be a non-negative int; got {epoch!r}.")
        epoch = int(epoch)
        if self.kind == "step":
            return max(self.initial_tau * self.gamma ** (epoch // self.step_size),
                       self.min_tau)
        knots = self.knots
        if knots[0][0] > 0:
            knots = [(0, self.initial_tau)] + knots
        if epoch >= knots[-1][0]:
            return knots[-1][1]
        for (e0, t0), (e1, t1) in zip(knots[:-1], knots[1:], strict=True):
            if e0 <= epoch < e1:
                if self.interpolation == "constant":
                    return t0
                return t0 + (t1 - t0) * (epoch - e0) / (e1 - e0)
        raise AssertionError("unreachable: knots cover every epoch")

    def to_dict(self):
        """Plain-dict config; `TemperatureSchedule.from_dict(d)` rebuilds the schedule."""
        config = {"kind": self.kind, "initial_tau": self.initial_tau}
        if self.kind == "step":
            config.update(gamma=self.gamma, step_size=self.step_size, min_tau=self.min_tau)
        else:
            config.update(knots=[list(k) for k in self.knots],
                          interpolation=self.interpolation)
        config["verbose"] = self.verbose
        return config

    get_config = to_dict

    @classmethod
    def from_dict(cls, config):
        config = dict(config)
        kind = config.pop("kind", "step")
        if "knots" in config and config["knots"] is not None:
            config["knots"] = [tuple(k) for k in config["knots"]]
        return cls(kind, **config)

    def _find_layers(self):
        layers = lps_layers(self.model)
        if not layers:
            warnings.warn(
                "TemperatureSchedule: the model has no LPSDownsampling2D layer, so there is "
                "no temperature to schedule; the callback does nothing.",
                stacklevel=3,
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

    def on_epoch_begin(self, epoch, logs=None):
        if self._lps_layers is None:
            self._lps_layers = self._find_layers()
        value = self.tau_at(epoch)
        for layer in self._lps_layers:
            layer.tau.assign(value)
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: TemperatureSchedule sets tau to {value:.6g}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["tau"] = self.tau_at(epoch)
