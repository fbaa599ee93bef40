"""Turning a resolved config into a model, an optimizer and a loss."""

import math

import keras
import tensorflow as tf

from lps_keras.callbacks import TemperatureSchedule
from lps_keras.models import SamplingSpec, deeplabv3plus, resnet, unet
from lps_keras.training.optimizers import PyTorchSGD
from lps_keras.training.schedules import exclude_from_weight_decay, make_lr_schedule
from lps_keras.training.temperature import tau_config

MODEL_KINDS = ("resnet", "deeplabv3plus", "unet")
OPTIMIZERS = ("sgd", "pytorch_sgd", "adam")
# `config.train.loss` per task; "auto" is the first.
LOSSES = {"classification": ("cross_entropy",), "segmentation": ("cross_entropy",),
          "regression": ("mse", "l1")}
# The metric the training loop reports per task: (history key, scale, unit).
TRAIN_METRICS = {
    "classification": ("accuracy", 100.0, "percent (0-100), on the training batches"),
    "segmentation": ("accuracy", 100.0, "percent (0-100) of labelled pixels, on the "
                     "training batches"),
    "regression": ("psnr", 1.0, "dB, mean over the training images (peak: each target's "
                   "maximum)"),
}


def _plain(value):
    """ConfigDict/FrozenConfigDict -> plain dicts and lists (Keras configs must be JSON)."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def build_model(model_config, input_shape, num_classes):
    """Builds the classifier, segmenter or U-Net described by `config.model`.

    A U-Net (`kind="unet"`) maps images to images: `num_classes` is unused and
    `out_channels` defaults to the input's channels; empty `upsampling` /
    `up_padding_mode` take the builder's defaults.
    """
    cfg = _plain(model_config)
    kind = cfg.pop("kind", "resnet")
    if kind not in MODEL_KINDS:
        raise ValueError(f"config.model.kind must be one of {MODEL_KINDS}; got {kind!r}.")
    # The sampling settings travel as one `SamplingSpec`; a setting the config lacks keeps
    # the spec's default (`logits_channels`: `DEFAULT_LOGITS_CHANNELS`; the configs in
    # configs/ always set it). A list (from JSON) is one width per stage.
    sampling = {key: cfg.pop(key) for key in list(cfg) if key in SamplingSpec.field_names()}
    sampling["lps_kwargs"] = cfg.pop("lps", None) or {}
    common = dict(input_shape=tuple(input_shape), sampling=SamplingSpec(**sampling), **cfg)
    try:
        if kind == "unet":
            for key in ("upsampling", "up_padding_mode"):
                common[key] = common.get(key) or None
            common.setdefault("out_channels", int(input_shape[-1]))
            if "channels" in common:
                common["channels"] = tuple(common["channels"])
            return unet(**common)
        common["num_classes"] = num_classes
        if kind == "resnet":
            return resnet(**common)
        return deeplabv3plus(**common)
    except TypeError as err:
        raise ValueError(f"Bad key in config.model for {kind}: {err}") from err


def build_optimizer(train_config, steps_per_epoch, model):
    """The optimizer of `config.train` with its epoch-based LR schedule.

    `config.train.optimizer` (see `OPTIMIZERS`): `"pytorch_sgd"` is `torch.optim.SGD`'s
    update (coupled L2 weight decay, PyTorch's momentum buffer; `PyTorchSGD`), what the
    papers' code trains with and what the paper configs use; `"sgd"` is Keras' SGD
    (decoupled weight decay); `"adam"` is Adam with PyTorch's constants (the U-Net
    recipes; `momentum` unused; weight decay, if any, decoupled). SGD leaves the LPS
    scorers out of weight decay unless `scorer_weight_decay`.
    """
    cfg = _plain(train_config)
    schedule_cfg = dict(cfg["lr_schedule"])
    schedule_cfg.setdefault("initial_learning_rate", cfg["learning_rate"])
    if schedule_cfg.get("name") in ("cosine", "poly"):
        schedule_cfg.setdefault("epochs", cfg["epochs"])
    schedule = make_lr_schedule(schedule_cfg, steps_per_epoch=steps_per_epoch)
    optimizer_name = cfg.get("optimizer", "sgd")
    if optimizer_name not in OPTIMIZERS:
        raise ValueError(f"config.train.optimizer must be one of {OPTIMIZERS}; got "
                         f"{optimizer_name!r}.")
    if optimizer_name == "adam":
        # PyTorch's Adam constants (the U-Net recipes); weight decay is decoupled (AdamW).
        return keras.optimizers.Adam(learning_rate=schedule, beta_1=0.9, beta_2=0.999,
                                     epsilon=1e-8, weight_decay=cfg["weight_decay"] or None)
    make = PyTorchSGD if optimizer_name == "pytorch_sgd" else keras.optimizers.SGD
    optimizer = make(
        learning_rate=schedule, momentum=cfg["momentum"], nesterov=cfg.get("nesterov", False),
        weight_decay=cfg["weight_decay"] or (0.0 if make is PyTorchSGD else None),
    )
    if cfg["weight_decay"] and not cfg.get("scorer_weight_decay", False):
        exclude_from_weight_decay(optimizer, model)
    return optimizer


def build_tau_schedule(train_config):
    """The `TemperatureSchedule` of `config.train.tau_schedule`, or None if it is empty.

    The schedule is selected by `name`, a recipe (`"cifar"`, `"imagenet"`, other keys
    override it) or a kind (`"step"`, `"multistep"`); `kind` is read as a deprecated alias
    of `name` so the config.json of older runs still loads.
    """
    cfg = _plain(train_config).get("tau_schedule")
    if not cfg:
        return None
    return TemperatureSchedule.from_dict(tau_config(cfg))


def check_loss(task, loss):
    """The loss name of `config.train.loss` for `task` (`"auto"`: the task's default)."""
    choices = LOSSES[task]
    if loss in (None, "", "auto"):
        return choices[0]
    if loss not in choices:
        raise ValueError(f"the loss must be 'auto' or one of {choices} for {task} data; "
                         f"got {loss!r}.")
    return loss


def per_example_loss(task, ignore_index=255, loss="auto"):
    """Per-example loss: cross-entropy from logits (segmentation averages over labelled
    pixels), or for regression the mean squared (`"mse"`) or absolute (`"l1"`) error over
    each example's pixels and channels."""
    loss = check_loss(task, loss)
    if task == "regression":
        def regression_loss(targets, outputs):
            error = tf.cast(outputs, tf.float32) - tf.cast(targets, tf.float32)
            error = tf.square(error) if loss == "mse" else tf.abs(error)
            return tf.reduce_mean(error, axis=[1, 2, 3])
        return regression_loss
    if task == "classification":
        def loss(targets, logits):
            return keras.losses.sparse_categorical_crossentropy(
                targets, tf.cast(logits, tf.float32), from_logits=True)
        return loss

    def seg_loss(targets, logits):
        targets = tf.cast(targets, tf.int32)
        valid = tf.not_equal(targets, ignore_index)
        safe = tf.where(valid, targets, tf.zeros_like(targets))
        pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=safe, logits=tf.cast(logits, tf.float32))
        pixel = tf.where(valid, pixel, tf.zeros_like(pixel))
        count = tf.reduce_sum(tf.cast(valid, tf.float32), axis=[1, 2])
        return tf.reduce_sum(pixel, axis=[1, 2]) / tf.maximum(count, 1.0)
    return seg_loss


def psnr_per_example(targets, outputs):
    """PSNR in dB of each example, with each target's maximum as the peak (the definition
    of `lps_keras.metrics.psnr`, in TensorFlow)."""
    targets = tf.cast(targets, tf.float32)
    mse = tf.reduce_mean(tf.square(tf.cast(outputs, tf.float32) - targets), axis=[1, 2, 3])
    peak = tf.reduce_max(targets, axis=[1, 2, 3])
    return 20.0 * tf.math.log(peak) / tf.math.log(10.0) \
        - 10.0 * tf.math.log(mse) / tf.math.log(10.0)


def batch_metric(task, targets, outputs, ignore_index=255):
    """`(sum, count)` of the task's training metric (`TRAIN_METRICS`) over a batch:
    correct predictions and their number (images for classification, labelled pixels for
    segmentation), or the PSNRs of a regression batch and its size."""
    if task == "regression":
        return tf.reduce_sum(psnr_per_example(targets, outputs)), \
            tf.cast(tf.shape(targets)[0], tf.float32)
    return count_correct(task, targets, outputs, ignore_index)


def count_correct(task, targets, logits, ignore_index=255):
    """(correct, total) predictions: images for classification, labelled pixels else."""
    predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
    targets = tf.cast(targets, tf.int32)
    if task == "classification":
        correct = tf.reduce_sum(tf.cast(tf.equal(predictions, targets), tf.float32))
        return correct, tf.cast(tf.shape(targets)[0], tf.float32)
    valid = tf.not_equal(targets, ignore_index)
    correct = tf.reduce_sum(tf.cast(tf.logical_and(valid, tf.equal(predictions, targets)),
                                    tf.float32))
    return correct, tf.reduce_sum(tf.cast(valid, tf.float32))


def steps_per_epoch(dataset, train_config):
    """Optimizer steps per epoch: the batched dataset's length, or the config's cap."""
    cap = _plain(train_config).get("steps_per_epoch")
    cardinality = int(dataset.cardinality())
    if cardinality > 0:
        return min(cardinality, cap) if cap else cardinality
    if cap:
        return int(cap)
    raise ValueError(
        "Cannot tell the number of batches per epoch of this dataset; set "
        "config.train.steps_per_epoch."
    )


def ceil_div(a, b):
    return int(math.ceil(a / b))
