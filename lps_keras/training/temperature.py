"""Gumbel-softmax temperature (tau) schedules of LPS layers: the pure math, per epoch.

`TauSchedule.tau_at(epoch)` is a function of the 0-based epoch index alone, so a resumed
run continues the same schedule. `lps_keras.callbacks.TemperatureSchedule` is the Keras
callback over it (and what `train.py` uses); tau never changes within an epoch.

Kinds:

- `"step"`: `max(initial_tau * gamma ** (epoch // step_size), min_tau)`.
- `"multistep"` (alias `"piecewise"`): `knots` of `(epoch, tau)` with increasing epochs,
  linear or constant between them, constant after the last.

Recipes (`TAU_RECIPES`, the reference recipes of the LPS paper; see docs/design.md,
section 6): `"cifar"` is x0.85 every 10 epochs from 1.0, floor 0.5; `"imagenet"`
is piecewise linear from 1.0 through `(62, 0.5)`, `(82, 0.05)`, `(90, 0.01)`.

Example:

>>> make_tau_schedule({"name": "cifar", "step_size": 1}).tau_at(2)
0.7224999999999999
"""

import warnings

from lps_keras.checks import (
    check_non_negative_int,
    check_positive_int,
    check_positive_number,
    is_int,
)

__all__ = ["TAU_KINDS", "TAU_RECIPES", "TauSchedule", "make_tau_schedule", "tau_config"]

TAU_KINDS = ("step", "multistep")
INTERPOLATIONS = ("linear", "constant")
_ALIASES = {"piecewise": "multistep"}

TAU_RECIPES = {
    "cifar": {"kind": "step", "initial_tau": 1.0, "gamma": 0.85, "step_size": 10,
              "min_tau": 0.5},
    "imagenet": {"kind": "multistep", "initial_tau": 1.0,
                 "knots": [(62, 0.5), (82, 0.05), (90, 0.01)], "interpolation": "linear"},
}


def _check_positive(name, value):
    return check_positive_number(name, value, note=" (a temperature)")


class TauSchedule:
    """A temperature schedule as a pure function of the epoch: `tau_at(epoch)`.

    Args:
        kind: `"step"` or `"multistep"` (alias `"piecewise"`).
        initial_tau: tau at epoch 0 (default 1.0).
        gamma: `"step"` only; decay factor (default 0.85).
        step_size: `"step"` only; epochs between decays (default 10).
        min_tau: `"step"` only; floor (default 0.5; None for no floor).
        knots: `"multistep"` only; list of `(epoch, tau)`. If the first knot is after epoch
            0, the schedule starts from `(0, initial_tau)`.
        interpolation: `"multistep"` only; `"linear"` (default) or `"constant"`.

    Example:

    >>> schedule = TauSchedule("multistep", knots=[(62, 0.5), (82, 0.05), (90, 0.01)])
    >>> [round(schedule.tau_at(e), 3) for e in (0, 31, 62, 72, 90, 120)]
    [1.0, 0.75, 0.5, 0.275, 0.01, 0.01]
    """

    def __init__(self, kind="step", *, initial_tau=None, gamma=None, step_size=None,
                 min_tau=None, knots=None, interpolation=None):
        if not isinstance(kind, str) or _ALIASES.get(kind, kind) not in TAU_KINDS:
            raise ValueError(
                f"Unknown temperature schedule kind {kind!r}; use one of "
                f"{TAU_KINDS + tuple(_ALIASES)}."
            )
        kind = _ALIASES.get(kind, kind)
        self.kind = kind
        self.gamma = self.step_size = self.min_tau = None
        self.knots = self.interpolation = None
        if kind == "step":
            self._reject_unused(knots=knots, interpolation=interpolation)
            self.initial_tau = _check_positive(
                "initial_tau", 1.0 if initial_tau is None else initial_tau)
            self.gamma = _check_positive("gamma", 0.85 if gamma is None else gamma)
            self.step_size = check_positive_int(
                "step_size", 10 if step_size is None else step_size,
                note=" (epochs between decays)")
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
            if not is_int(epoch) or epoch < 0:
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
        """The reference schedule `"cifar"` or `"imagenet"` (`TAU_RECIPES`)."""
        if name not in TAU_RECIPES:
            raise ValueError(f"Unknown recipe {name!r}; use one of {tuple(TAU_RECIPES)}.")
        config = dict(TAU_RECIPES[name])
        config.update(overrides)
        return cls.from_dict(config)

    def tau_at(self, epoch):
        """Temperature for the 0-based `epoch` (a pure function of the epoch index)."""
        epoch = check_non_negative_int("epoch", epoch)
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
        """Plain-dict config (constructor arguments); `from_dict(d)` rebuilds the schedule."""
        config = {"kind": self.kind, "initial_tau": self.initial_tau}
        if self.kind == "step":
            config.update(gamma=self.gamma, step_size=self.step_size, min_tau=self.min_tau)
        else:
            config.update(knots=[list(k) for k in self.knots],
                          interpolation=self.interpolation)
        return config

    @classmethod
    def from_dict(cls, config):
        config = dict(config)
        kind = config.pop("kind", "step")
        if "knots" in config and config["knots"] is not None:
            config["knots"] = [tuple(k) for k in config["knots"]]
        return cls(kind, **config)


def tau_config(config):
    """Constructor arguments (with `"kind"`) for a `tau_schedule` config dict.

    `config["name"]` selects the schedule, as `lr_schedule.name` does for learning rates:
    a recipe (`"cifar"`, `"imagenet"`; the other keys override its values) or a kind
    (`"step"`, `"multistep"`, `"piecewise"`). `"kind"` is accepted as a deprecated
    alias of `"name"` (configs written before it was renamed, e.g. old runs' config.json).
    Without either, the kind is `"step"`.

    Example:

    >>> tau_config({"name": "cifar", "step_size": 2})["step_size"]
    2
    """
    if config is None or not hasattr(config, "items"):
        raise ValueError(
            "A tau_schedule config must be a dict such as {'name': 'cifar'}; got "
            f"{config!r}."
        )
    config = dict(config)
    name = config.pop("name", None)
    if "kind" in config:
        kind = config.pop("kind")
        if name is not None and name != kind:
            raise ValueError(
                f"tau_schedule has both name={name!r} and the deprecated kind={kind!r}; "
                "keep only `name`."
            )
        warnings.warn(
            "tau_schedule 'kind' is deprecated; name the schedule with 'name' (a recipe "
            f"such as 'cifar' or a kind such as 'step'), e.g. {{'name': {kind!r}, ...}}.",
            DeprecationWarning, stacklevel=3,
        )
        name = kind
    if name is None:
        name = "step"
    if name in TAU_RECIPES:
        resolved = dict(TAU_RECIPES[name])
        resolved.update(config)
        return resolved
    if not isinstance(name, str) or _ALIASES.get(name, name) not in TAU_KINDS:
        raise ValueError(
            f"Unknown tau_schedule name {name!r}; use a recipe {tuple(TAU_RECIPES)} or a "
            f"kind {TAU_KINDS + tuple(_ALIASES)}."
        )
    return {"kind": name, **config}


def make_tau_schedule(config=None, **kwargs):
    """A `TauSchedule` from a config dict selected by `"name"` (see `tau_config`);
    keyword arguments override the dict."""
    merged = dict(config or {})
    merged.update(kwargs)
    return TauSchedule.from_dict(tau_config(merged))
