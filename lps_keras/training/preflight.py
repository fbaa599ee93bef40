"""Everything about a run that can be checked before its first training step.

`check_settings` validates the config's values; `check_evaluation` runs the run's own
evaluation path on two examples and `check_export` validates the export settings, so that no
run can fail after training for a reason that was knowable before it (a missing split, an
unreadable dataset, an export directory that cannot be written). Every failure is a
`lps_keras.errors.ConfigError` whose message starts with the setting's name.
"""

import contextlib
import os

from lps_keras.checks import check_non_negative_int, check_positive_int, check_positive_number
from lps_keras.errors import ConfigError
from lps_keras.evaluation.runner import check_max_shift

DATA_SOURCES = ("auto", "folder", "tfds")


@contextlib.contextmanager
def setting(name):
    """Turns a `ValueError`/`TypeError` raised in the block into a `ConfigError` that names
    the setting `name` (e.g. `"config.model"`)."""
    try:
        yield
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{name}: {e}") from None


def _get(config, dotted):
    value = config
    for key in dotted.split("."):
        value = value.get(key) if hasattr(value, "get") else None
    return value


def check_settings(config, info, num_replicas):
    """Validates the values of `config` that need no data, model or disk.

    Args:
        config: the resolved run config.
        info: the `DatasetInfo` of `config.data.name`.
        num_replicas: replicas of the strategy (the global batch is split among them).

    Returns:
        The run's `Validator` (built while checking the validation settings), or None when
        `config.eval.validation_split` is empty.
    """
    checks = (
        ("seed", check_non_negative_int),
        ("train.epochs", check_positive_int),
        ("train.batch_size", check_positive_int),
        ("train.steps_per_epoch", check_non_negative_int),
        ("train.learning_rate", check_positive_number),
        ("eval.batch_size", check_positive_int),
        ("eval.num_examples", check_non_negative_int),
        ("eval.num_validation_examples", check_non_negative_int),
        ("eval.max_shift", check_non_negative_int),
        ("eval.seg_max_shift", check_non_negative_int),
        ("data.max_shift", check_non_negative_int),
        ("data.num_train_examples", check_non_negative_int),
        ("data.num_eval_examples", check_non_negative_int),
        ("data.holdout", check_non_negative_int),
        ("eval.validate_every", check_positive_int),
    )
    for dotted, check in checks:
        value = _get(config, dotted)
        if value is not None:
            with setting(f"config.{dotted}"):
                check(f"config.{dotted}", value)
    source = _get(config, "data.source") or "auto"
    if source not in DATA_SOURCES:
        raise ConfigError(f"config.data.source must be one of {DATA_SOURCES}; got {source!r}.")
    split = config.eval.split
    if split not in info.splits:
        raise ConfigError(
            f"config.eval.split: {split!r} is not a split of {info.name} (splits: "
            f"{', '.join(info.splits)}); set it to one of those.")
    with setting("config.train.loss"):
        from lps_keras.training.builders import check_loss

        check_loss(info.task, config.train.get("loss", "auto"))
    from lps_keras.training.validation import Validator

    validator = Validator.from_config(config, info)  # ConfigError for a bad split
    check_best_metric(config, info, validator)
    shift_key = "eval.seg_max_shift" if info.task == "segmentation" else "eval.max_shift"
    shift = _get(config, shift_key)
    if shift is not None:
        try:
            check_max_shift(int(shift), info.name, _get(config, "data.image_size") or None,
                            _get(config, "data.crop_size") or None, name=f"config.{shift_key}")
        except ValueError as e:
            raise ConfigError(str(e)) from None
    batch = int(config.train.batch_size)
    if batch % num_replicas:
        raise ConfigError(
            f"config.train.batch_size ({batch}) must be divisible by the number of replicas "
            f"({num_replicas}); the per-replica batch is derived from it.")
    if not info.num_classes and info.task != "regression":
        raise ConfigError(
            f"config.data: the number of classes of {info.name} is unknown; for an image "
            "folder, point config.data.data_dir at a folder with one subfolder per class.")
    if config.export.enabled:
        from lps_keras.export import check_name

        with setting("config.export.name"):
            check_name(config.export.name or config.name)
    return validator


def check_best_metric(config, info, validator):
    """`config.train.best_metric` must be a metric every history record (or every validated
    one) has; `config.train.export_best` needs it."""
    from lps_keras.training.builders import TRAIN_METRICS

    name = config.train.get("best_metric") or ""
    export_best = config.train.get("export_best", False)
    if not isinstance(export_best, bool):
        raise ConfigError(f"config.train.export_best must be True or False; got "
                          f"{export_best!r}.")
    if export_best and not name:
        raise ConfigError("config.train.export_best=True needs config.train.best_metric "
                          "(e.g. 'val_loss') to choose the best epoch.")
    if not name:
        return
    choices = ["loss", TRAIN_METRICS[info.task][0]]
    if validator is not None:
        choices += [f"val_{m}" for m in validator.metric_names]
    if name not in choices:
        hint = "" if validator is not None or not name.startswith("val_") else (
            " (val_ metrics need config.eval.validation_split)")
        raise ConfigError(f"config.train.best_metric: {name!r} is not recorded by this run"
                          f"{hint}; choose one of {', '.join(choices)}.")


def steps_per_epoch(cardinality, config):
    """Optimizer steps per epoch from the batched training set's `cardinality`.

    Raises `ConfigError` when there is not one full batch (the batch is larger than the
    training set), or when the length is unknown and `config.train.steps_per_epoch` unset.
    """
    cap = int(config.train.get("steps_per_epoch") or 0)
    if cardinality == 0:
        raise ConfigError(
            f"config.train.batch_size ({int(config.train.batch_size)}) is larger than the "
            f"training set of {config.data.name} (training drops the last partial batch, so "
            "an epoch would have no step). Lower config.train.batch_size, or use more "
            "training data.")
    if cardinality > 0:
        return min(cardinality, cap) if cap else cardinality
    if cap:
        return cap
    raise ConfigError(
        "config.train.steps_per_epoch: the number of batches per epoch of this dataset is "
        "unknown; set it.")


def check_readable(dataset):
    """Reads the first batch of `dataset`, so that unreadable data fails before training;
    a corrupt image file raises the `CorruptDatasetError` naming it."""
    import tensorflow as tf

    from lps_keras.data.errors import CorruptDatasetError

    try:
        next(iter(dataset.take(1)))
    except tf.errors.InvalidArgumentError as e:
        corrupt = CorruptDatasetError.from_tf_error(e)
        if corrupt is None:
            raise
        raise corrupt from None


def check_evaluation(model, run_evaluation, batch_size):
    """Runs `run_evaluation(model, num_examples=2)` (the run's own evaluation path on its
    first two examples, padded to the evaluation batch) so that a bad evaluation setting,
    missing evaluation data or an evaluation batch too large for memory fails now, not
    after training."""
    import tensorflow as tf

    try:
        with setting("config.eval"):
            run_evaluation(model, num_examples=2)
    except tf.errors.ResourceExhaustedError:
        raise ConfigError(
            f"config.eval.batch_size: evaluating {batch_size} images at once ran out of "
            "memory; lower it.") from None


def check_export(model, config, info):
    """Validates the export of `model` with the run's settings and that the export
    directory can be written (creating it), without exporting anything."""
    from lps_keras.export import check_export_arguments

    arguments = export_arguments(config, info)
    del arguments["export_dir"]
    with setting("config.export"):
        check_export_arguments(model, **arguments)
    directory = os.path.abspath(os.path.expanduser(config.export.dir))
    _check_writable(directory, "config.export.dir")


def export_arguments(config, info):
    """The `export_saved_model` keyword arguments of a run (besides the model).

    A regression dataset (`info.task == "regression"`) exports with `task="regression"`
    (float32 images in model units, output `outputs`); other datasets leave the task to
    `"auto"` (classification or segmentation from the output rank)."""
    arguments = dict(export_dir=config.export.dir, name=config.export.name or config.name,
                     mean=info.mean, std=info.std,
                     class_names=list(info.class_names) if info.class_names else None,
                     dataset=config.data.name)
    if info.task == "regression":
        arguments["task"] = "regression"
    return arguments


def _check_writable(directory, setting_name):
    try:
        os.makedirs(directory, exist_ok=True)
        probe = os.path.join(directory, f".write-test-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise ConfigError(
            f"{setting_name}: cannot write to {directory} ({e.strerror or e}). Choose a "
            "writable directory.") from None
