"""Learning-rate schedules written in epochs, and weight decay that spares LPS scorers.

Keras optimizers call a schedule with the global step (`optimizer.iterations`); these
schedules take `steps_per_epoch` so that recipes can be written in epochs, as the papers
do (the recipes: docs/design.md, section 6). All epoch numbers are absolute
(epoch 100 is the 100th epoch of the run, warm-up included). Warm-up multiplies the
schedule by a linear ramp `min(1, (step + 1) / warmup_steps)`, so the first step already
has a non-zero rate.

Example:

>>> schedule = make_lr_schedule(
...     {"name": "multistep", "initial_learning_rate": 0.1, "milestones": [100]},
...     steps_per_epoch=196)
>>> optimizer = keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=5e-4)
>>> exclude_from_weight_decay(optimizer, model)  # doctest: +SKIP
"""

import math

import keras
from keras import ops

from lps_keras.checks import (
    check_non_negative_number,
    check_positive_int,
    check_positive_number,
)
from lps_keras.layers import lps_layers

__all__ = [
    "ConstantSchedule",
    "CosineSchedule",
    "MultiStepSchedule",
    "PolySchedule",
    "SCHEDULES",
    "StepSchedule",
    "exclude_from_weight_decay",
    "make_lr_schedule",
]


class _EpochSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Base: converts steps to epochs and applies the optional linear warm-up."""

    def __init__(self, initial_learning_rate, steps_per_epoch, warmup_epochs=0.0):
        self.initial_learning_rate = check_positive_number(
            "initial_learning_rate", initial_learning_rate)
        self.steps_per_epoch = check_positive_int("steps_per_epoch", steps_per_epoch)
        self.warmup_epochs = check_non_negative_number("warmup_epochs", warmup_epochs)

    def _epoch_steps(self, epochs):
        """Whole number of steps in `epochs` epochs (which may be fractional)."""
        return int(round(epochs * self.steps_per_epoch))

    def _decayed(self, step):
        raise NotImplementedError

    def __call__(self, step):
        step = ops.cast(step, "int64")
        lr = ops.cast(self._decayed(step), "float32")
        if self.warmup_epochs > 0:
            warmup_steps = max(1, self._epoch_steps(self.warmup_epochs))
            ramp = (ops.cast(step, "float32") + 1.0) / float(warmup_steps)
            lr = lr * ops.minimum(ramp, 1.0)
        return lr

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "warmup_epochs": self.warmup_epochs,
        }


@keras.saving.register_keras_serializable(package="lps_keras")
class ConstantSchedule(_EpochSchedule):
    """A constant learning rate (with optional warm-up).

    Example:

    >>> float(ConstantSchedule(0.1, steps_per_epoch=10, warmup_epochs=1)(4))
    0.05000000074505806
    """

    def _decayed(self, step):
        return ops.full((), self.initial_learning_rate, dtype="float32")


@keras.saving.register_keras_serializable(package="lps_keras")
class StepSchedule(_EpochSchedule):
    """`lr * gamma ** floor(epoch / step_size)`: decays by `gamma` every `step_size` epochs.

    ImageNet recipe: `StepSchedule(0.1, steps_per_epoch, step_size=30, gamma=0.1)`.

    Args:
        initial_learning_rate: rate at epoch 0.
        steps_per_epoch: optimizer steps per epoch.
        step_size: epochs between decays (positive int).
        gamma: decay factor.
        warmup_epochs: epochs of linear warm-up (may be fractional).

    Example:

    >>> s = StepSchedule(0.1, steps_per_epoch=10, step_size=30, gamma=0.1)
    >>> [round(float(s(step)), 6) for step in (0, 299, 300, 600)]
    [0.1, 0.1, 0.01, 0.001]
    """

    def __init__(self, initial_learning_rate, steps_per_epoch, step_size=30, gamma=0.1,
                 warmup_epochs=0.0):
        super().__init__(initial_learning_rate, steps_per_epoch, warmup_epochs)
        self.step_size = check_positive_int("step_size", step_size)
        self.gamma = check_positive_number("gamma", gamma)

    def _decayed(self, step):
        # Integer division of the int64 step: exact at epoch boundaries for any run length.
        decays = ops.floor_divide(step, self.step_size * self.steps_per_epoch)
        return self.initial_learning_rate * ops.power(self.gamma, ops.cast(decays, "float32"))

    def get_config(self):
        config = super().get_config()
        config.update({"step_size": self.step_size, "gamma": self.gamma})
        return config


@keras.saving.register_keras_serializable(package="lps_keras")
class MultiStepSchedule(_EpochSchedule):
    """Multiplies the rate by `gamma` at each epoch in `milestones`.

    CIFAR recipe: `MultiStepSchedule(0.1, steps_per_epoch, milestones=[100], gamma=0.1)`.

    Args:
        initial_learning_rate: rate at epoch 0.
        steps_per_epoch: optimizer steps per epoch.
        milestones: strictly increasing positive epochs.
        gamma: decay factor per milestone.
        warmup_epochs: epochs of linear warm-up.

    Example:

    >>> s = MultiStepSchedule(0.1, steps_per_epoch=10, milestones=[2, 5], gamma=0.5)
    >>> [round(float(s(step)), 6) for step in (0, 19, 20, 49, 50, 1000)]
    [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    """

    def __init__(self, initial_learning_rate, steps_per_epoch, milestones=(100,), gamma=0.1,
                 warmup_epochs=0.0):
        super().__init__(initial_learning_rate, steps_per_epoch, warmup_epochs)
        if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__iter__"):
            raise ValueError(f"`milestones` must be a list of epochs; got {milestones!r}.")
        milestones = [check_positive_number("milestone", m) for m in milestones]
        if not milestones:
            raise ValueError("`milestones` is empty; give at least one epoch, e.g. [100].")
        if any(b <= a for a, b in zip(milestones[:-1], milestones[1:], strict=True)):
            raise ValueError(f"`milestones` must be strictly increasing; got {milestones}.")
        self.milestones = [int(m) if float(m).is_integer() else m for m in milestones]
        self.gamma = check_positive_number("gamma", gamma)

    def _decayed(self, step):
        decays = ops.zeros((), dtype="float32")
        for milestone in self.milestones:
            decays = decays + ops.cast(step >= self._epoch_steps(milestone), "float32")
        return self.initial_learning_rate * ops.power(self.gamma, decays)

    def get_config(self):
        config = super().get_config()
        config.update({"milestones": list(self.milestones), "gamma": self.gamma})
        return config


class _AnnealSchedule(_EpochSchedule):
    """Shared by cosine and poly: progress `t = min(step / (epochs * steps_per_epoch), 1)`."""

    def __init__(self, initial_learning_rate, steps_per_epoch, epochs, final_learning_rate,
                 warmup_epochs):
        super().__init__(initial_learning_rate, steps_per_epoch, warmup_epochs)
        self.epochs = check_positive_number("epochs", epochs)
        self.final_learning_rate = check_non_negative_number(
            "final_learning_rate", final_learning_rate)
        if self.final_learning_rate > self.initial_learning_rate:
            raise ValueError(
                f"`final_learning_rate` ({final_learning_rate}) must not exceed "
                f"`initial_learning_rate` ({initial_learning_rate})."
            )
        if self.epochs.is_integer():
            self.epochs = int(self.epochs)

    def _progress(self, step):
        total = max(1, self._epoch_steps(self.epochs))
        return ops.minimum(ops.cast(step, "float32") / float(total), 1.0)

    def get_config(self):
        config = super().get_config()
        config.update({"epochs": self.epochs, "final_learning_rate": self.final_learning_rate})
        return config


@keras.saving.register_keras_serializable(package="lps_keras")
class CosineSchedule(_AnnealSchedule):
    """Cosine annealing from `initial_learning_rate` to `final_learning_rate` over `epochs`.

    `lr = final + (initial - final) * (1 + cos(pi * t)) / 2` with `t` the fraction of the
    `epochs` elapsed (per step); `final_learning_rate` afterwards.

    Example:

    >>> s = CosineSchedule(0.1, steps_per_epoch=10, epochs=10)
    >>> [round(float(s(step)), 6) for step in (0, 50, 100, 150)]
    [0.1, 0.05, 0.0, 0.0]
    """

    def __init__(self, initial_learning_rate, steps_per_epoch, epochs,
                 final_learning_rate=0.0, warmup_epochs=0.0):
        super().__init__(initial_learning_rate, steps_per_epoch, epochs, final_learning_rate,
                         warmup_epochs)

    def _decayed(self, step):
        t = self._progress(step)
        span = self.initial_learning_rate - self.final_learning_rate
        return self.final_learning_rate + span * 0.5 * (1.0 + ops.cos(math.pi * t))


@keras.saving.register_keras_serializable(package="lps_keras")
class PolySchedule(_AnnealSchedule):
    """Polynomial ("poly") decay used by DeepLab: `(initial - final) * (1 - t)**power + final`.

    `t` is the fraction of `epochs` elapsed, per step (DeepLab updates every iteration).

    Args:
        initial_learning_rate: rate at step 0.
        steps_per_epoch: optimizer steps per epoch.
        epochs: length of the decay (the run length).
        power: exponent (0.9 in DeepLab).
        final_learning_rate: rate at the end and afterwards.
        warmup_epochs: epochs of linear warm-up.

    Example:

    >>> s = PolySchedule(0.01, steps_per_epoch=10, epochs=10, power=1.0)
    >>> [round(float(s(step)), 6) for step in (0, 50, 100)]
    [0.01, 0.005, 0.0]
    """

    def __init__(self, initial_learning_rate, steps_per_epoch, epochs, power=0.9,
                 final_learning_rate=0.0, warmup_epochs=0.0):
        super().__init__(initial_learning_rate, steps_per_epoch, epochs, final_learning_rate,
                         warmup_epochs)
        self.power = check_positive_number("power", power)

    def _decayed(self, step):
        t = self._progress(step)
        span = self.initial_learning_rate - self.final_learning_rate
        return self.final_learning_rate + span * ops.power(1.0 - t, self.power)

    def get_config(self):
        config = super().get_config()
        config.update({"power": self.power})
        return config


SCHEDULES = {
    "constant": ConstantSchedule,
    "step": StepSchedule,
    "multistep": MultiStepSchedule,
    "cosine": CosineSchedule,
    "poly": PolySchedule,
}

# Arguments each schedule accepts in `make_lr_schedule` besides `steps_per_epoch`.
_REQUIRED = {"epochs"}
_KEYS = {
    "constant": ("initial_learning_rate", "warmup_epochs"),
    "step": ("initial_learning_rate", "step_size", "gamma", "warmup_epochs"),
    "multistep": ("initial_learning_rate", "milestones", "gamma", "warmup_epochs"),
    "cosine": ("initial_learning_rate", "epochs", "final_learning_rate", "warmup_epochs"),
    "poly": ("initial_learning_rate", "epochs", "power", "final_learning_rate",
             "warmup_epochs"),
}


def make_lr_schedule(config=None, steps_per_epoch=None, **kwargs):
    """Builds a schedule from a config dict (e.g. read from YAML) and/or keyword arguments.

    `config["name"]` picks the schedule: `"constant"`, `"step"`, `"multistep"`, `"cosine"`
    or `"poly"`; the other keys are that schedule's arguments (see the classes):

    - all: `initial_learning_rate` (required), `warmup_epochs` (default 0);
    - step: `step_size` (30), `gamma` (0.1);
    - multistep: `milestones` ([100]), `gamma` (0.1);
    - cosine: `epochs` (required), `final_learning_rate` (0);
    - poly: `epochs` (required), `power` (0.9), `final_learning_rate` (0).

    Keyword arguments override the dict. `steps_per_epoch` may also be given in the dict.

    Args:
        config: dict with a `"name"` key, or None when everything is in `kwargs`.
        steps_per_epoch: optimizer steps per epoch (`ceil(num_examples / batch_size)`).
        **kwargs: schedule arguments.

    Returns:
        A `keras.optimizers.schedules.LearningRateSchedule`.

    Example:

    >>> s = make_lr_schedule(name="poly", initial_learning_rate=0.01, epochs=50,
    ...                      steps_per_epoch=100)
    >>> type(s).__name__
    'PolySchedule'
    """
    if config is not None and not isinstance(config, dict):
        raise ValueError(
            f"`config` must be a dict such as {{'name': 'step', 'initial_learning_rate': 0.1}};"
            f" got {type(config).__name__}."
        )
    merged = dict(config or {})
    merged.update(kwargs)
    if steps_per_epoch is not None:
        merged["steps_per_epoch"] = steps_per_epoch
    name = merged.pop("name", None)
    if name is None:
        raise ValueError(
            f"The schedule config needs a 'name', one of {tuple(SCHEDULES)}; got keys "
            f"{sorted(merged)}."
        )
    if name not in SCHEDULES:
        raise ValueError(f"Unknown learning-rate schedule {name!r}; use one of "
                         f"{tuple(SCHEDULES)}.")
    if "steps_per_epoch" not in merged:
        raise ValueError("`steps_per_epoch` is required (ceil(num_examples / batch_size)).")
    allowed = _KEYS[name]
    unknown = sorted(set(merged) - set(allowed) - {"steps_per_epoch"})
    if unknown:
        raise ValueError(
            f"Unknown key(s) {unknown} for the {name!r} schedule; allowed keys: "
            f"{['name', 'steps_per_epoch', *allowed]}."
        )
    missing = [key for key in ("initial_learning_rate", *sorted(_REQUIRED & set(allowed)))
               if key not in merged]
    if missing:
        raise ValueError(f"The {name!r} schedule needs {missing}.")
    return SCHEDULES[name](**merged)


def exclude_from_weight_decay(optimizer, model):
    """Makes `optimizer`'s weight decay skip every LPS scorer weight in `model`.

    The reference recipes apply weight decay to all weights except the LPS scorers (the
    small CNNs that score polyphase components). This collects the trainable weights of
    the `scorer` of every `LPSDownsampling2D` (nested models included) and registers them
    with `optimizer.exclude_from_weight_decay`, keeping exclusions made before. Call it
    after the model is built and before the optimizer is (i.e. before `fit` or
    `apply_gradients`). A model without LPS layers is left alone.

    Note: Keras' own optimizers apply weight decay decoupled from the gradient
    (`w -= lr * wd * w`), which differs from PyTorch SGD's coupled L2 term when momentum
    is used; `lps_keras.training.optimizers.PyTorchSGD` has PyTorch's semantics and honours
    these exclusions for its L2 term.

    Args:
        optimizer: a Keras optimizer, not built yet.
        model: a built Keras model (or layer).

    Returns:
        The list of excluded variables.

    Example:

    >>> optimizer = keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=5e-4)
    >>> excluded = exclude_from_weight_decay(optimizer, model)  # doctest: +SKIP
    >>> model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    ... # doctest: +SKIP
    """
    if getattr(optimizer, "built", False):
        raise ValueError(
            "The optimizer is already built, so its weight-decay exclusions are fixed. Call "
            "`exclude_from_weight_decay(optimizer, model)` before `fit` / "
            "`apply_gradients`, on a fresh optimizer."
        )
    variables = []
    for layer in lps_layers(model):
        if not layer.built:
            raise ValueError(
                f"LPS layer {layer.name!r} is not built, so its scorer has no weights yet. "
                "Build the model (call it on a batch or `model.build(shape)`) first."
            )
        variables.extend(layer.scorer.trainable_weights)
    if not variables:
        return []
    # `exclude_from_weight_decay` replaces earlier exclusions: keep them.
    previous_ids = set(getattr(optimizer, "_exclude_from_weight_decay", set()))
    previous_pattern = getattr(optimizer, "_exclude_from_weight_decay_pattern", None)
    optimizer.exclude_from_weight_decay(var_list=variables)
    optimizer._exclude_from_weight_decay |= previous_ids
    optimizer._exclude_from_weight_decay_pattern = previous_pattern
    return variables
