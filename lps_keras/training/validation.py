"""Per-epoch validation of a training run on a held-out split, for every task.

`config.eval.validation_split` names the split (empty: no validation). It must be a split
of the dataset other than the test split (`config.eval.split`): the test metrics of
`results.json` stay untouched by model selection. CIFAR-10 has only train and test, and
the ImageNet family reports on its "validation" split: there `config.data.holdout=N` holds
N training images out of training, and the split `"holdout"` scores them
(`lps_keras.data.holdout`). Anything else is refused with a `ConfigError` that says what
to set.

Every `config.eval.validate_every` epochs (and after the last one) the trainer calls the
`Validator` on the first `config.eval.num_validation_examples` examples of the split (0:
all of them; the split's order, no augmentation) and records its metrics as
`val_<metric>` in `history.jsonl` and `validation/<metric>` in TensorBoard:

- every task: `loss`, the training loss (`config.train.loss`) averaged over the examples;
- classification: `accuracy` (%) and `circular_consistency` (%): the share of images
  whose prediction survives one pair of random circular shifts of the whole image, up to
  `config.eval.max_shift` (the CIFAR protocol of `lps_keras.metrics.shift_consistency`;
  for ImageNet-family data a cheap stand-in for the test protocol's shifted crops);
- segmentation: `mean_iou` (%) and `circular_massc` (%): mASSC over
  `VALIDATION_SEG_SHIFTS` circular shifts per image up to `config.eval.seg_max_shift`;
- regression: `psnr` (dB), `ssim`, `nmse` and `equivariance_nmse` (one circular shift per
  image up to `config.eval.max_shift`), the definitions of the final evaluation.

All of it runs the model in inference mode on raw inputs through
`LoadedModel.from_keras`, exactly as the final evaluation does.
"""

import numpy as np
import tensorflow as tf

from lps_keras.data.holdout import HOLDOUT_DATASETS, HOLDOUT_SPLIT, check_holdout
from lps_keras.errors import ConfigError
from lps_keras.evaluation.loading import LoadedModel, load_arrays
from lps_keras.training.preflight import setting

VALIDATION_SEG_SHIFTS = 2
# The validation metrics of each task (recorded as `val_<name>`).
METRICS = {
    "classification": ("loss", "accuracy", "circular_consistency"),
    "segmentation": ("loss", "mean_iou", "circular_massc"),
    "regression": ("loss", "psnr", "ssim", "nmse", "equivariance_nmse"),
}


def larger_is_better(name):
    """Direction of a history metric (`val_` prefix allowed): names ending in "loss" or
    "nmse" are smaller-is-better, every other metric larger-is-better."""
    return not (name.endswith("loss") or name.endswith("nmse"))


def _other_splits_advice(info, test_split):
    """What to validate on instead: another split, the held-out part of the training
    split, or nothing."""
    others = [s for s in info.splits if s not in ("train", test_split)]
    if others:
        return f"validate on {' or '.join(others)}"
    if info.name in HOLDOUT_DATASETS:
        return (f"{info.name} has no other split: set config.data.holdout=<N> and "
                f"config.eval.validation_split='{HOLDOUT_SPLIT}' to validate on N training "
                "examples that are then not trained on")
    return (f"{info.name} has no other split, and holding part of its training set out "
            "is not implemented: leave config.eval.validation_split empty (no validation)")


class Validator:
    """Scores a model on one split after an epoch.

    Args:
        dataset: the dataset name.
        split: the split to score (never the test split; see `from_config`).
        task: the dataset's task.
        loss_fn: per-example loss `(targets, outputs) -> [B]` (the training loss).
        batch_size: images per forward pass.
        mean, std: the dataset's normalisation (the model expects normalised inputs).
        max_shift: consistency / equivariance shift range.
        ignore_index: ignored mask value (segmentation).
        num_classes: classes of a segmenter.
        seed: seed of the shift draws.
        data_settings: `load_arrays` keyword arguments (`data_dir`, `num_examples`,
            `image_size`, `crop_size`, `source`).
    """

    def __init__(self, dataset, split, task, loss_fn, batch_size, mean, std, max_shift,
                 ignore_index=255, num_classes=None, seed=0, **data_settings):
        self.dataset = dataset
        self.split = split
        self.task = task
        self.loss_fn = loss_fn
        self.batch_size = int(batch_size)
        self.mean, self.std = mean, std
        self.max_shift = int(max_shift)
        self.ignore_index = ignore_index
        self.num_classes = num_classes
        self.seed = int(seed)
        self.data_settings = data_settings
        self._arrays = None
        self._wrapped = None

    def on_first(self, num_examples):
        """The same validator on the first `num_examples` examples only (the pre-training
        check of the validation path)."""
        settings = dict(self.data_settings, num_examples=int(num_examples))
        return Validator(self.dataset, self.split, self.task, self.loss_fn, self.batch_size,
                         self.mean, self.std, self.max_shift, self.ignore_index,
                         self.num_classes, self.seed, **settings)

    @property
    def metric_names(self):
        """The names of the metrics `__call__` returns (without the `val_` prefix)."""
        return METRICS.get(self.task, METRICS["classification"])

    @classmethod
    def from_config(cls, config, info):
        """The run's validator, or None when `config.eval.validation_split` is empty.

        Raises `ConfigError` for a split that is not one of the dataset's (or the held-out
        part of its training split) or is the test split.
        """
        from lps_keras.training import builders

        split = config.eval.get("validation_split") or ""
        holdout = config.data.get("holdout", 0)
        with setting("config.data.holdout"):
            check_holdout(info.name, split, holdout, config.data.get("source") or "auto")
        if not split:
            return None
        if split == config.eval.split:
            raise ConfigError(
                f"config.eval.validation_split: {split!r} is the test split "
                f"(config.eval.split), and choosing by validation must never see the test "
                f"data; {_other_splits_advice(info, config.eval.split)}.")
        if split not in info.splits + (HOLDOUT_SPLIT,):
            raise ConfigError(
                f"config.eval.validation_split: {split!r} is not a split of {info.name} "
                f"(splits: {', '.join(info.splits)}); "
                f"{_other_splits_advice(info, config.eval.split)}.")
        if split == "train":
            raise ConfigError(
                "config.eval.validation_split: 'train' is the training data; validate on "
                "a held-out split.")
        data = config.data
        ignore = info.ignore_index if info.ignore_index is not None else 255
        shift = config.eval.seg_max_shift if info.task == "segmentation" \
            else config.eval.max_shift
        return cls(data.name, split, info.task,
                   builders.per_example_loss(info.task, ignore, config.train.get("loss",
                                                                                 "auto")),
                   config.eval.batch_size, info.mean, info.std, shift, ignore_index=ignore,
                   num_classes=info.num_classes, seed=int(config.seed),
                   data_dir=data.data_dir or None,
                   num_examples=int(config.eval.get("num_validation_examples") or 0) or None,
                   image_size=data.get("image_size") or None,
                   crop_size=data.get("crop_size") or None, source=data.get("source") or "auto",
                   holdout=holdout)

    def arrays(self):
        """The validation inputs (raw) and targets (read once)."""
        if self._arrays is None:
            self._arrays = load_arrays(self.dataset, self.split, seed=self.seed,
                                       **self.data_settings)
        return self._arrays

    def _model(self, model):
        # One wrapper per model: its compiled forward pass is traced once for the run.
        if self._wrapped is None or self._wrapped._keras is not model:
            self._wrapped = LoadedModel.from_keras(model, self.mean, self.std,
                                                   task=self.task)
        return self._wrapped

    def __call__(self, model):
        """`{metric: value}` of `model` on the validation examples (see the module)."""
        from lps_keras import metrics

        inputs, targets = self.arrays()
        wrapped = self._model(model)
        bs = self.batch_size
        loss_sum, outputs = 0.0, []
        for i in range(0, len(inputs), bs):
            out = wrapped(inputs[i:i + bs])
            loss_sum += float(tf.reduce_sum(self.loss_fn(tf.constant(targets[i:i + bs]),
                                                         tf.constant(out))))
            outputs.append(out if self.task == "regression" else np.argmax(out, axis=-1))
        outputs = np.concatenate(outputs)
        result = {"loss": loss_sum / len(inputs)}
        if self.task == "regression":
            full = metrics.reconstruction_metrics(wrapped, inputs, targets,
                                                  max_shift=self.max_shift, seed=self.seed,
                                                  batch_size=bs)
            result.update({k: float(full[k]) for k in ("psnr", "ssim", "nmse",
                                                        "equivariance_nmse")})
        elif self.task == "segmentation":
            confusion = metrics.confusion_matrix(targets, outputs, self.num_classes,
                                                 ignore_label=self.ignore_index)
            result["mean_iou"] = float(metrics.mean_iou(confusion))
            result["circular_massc"] = float(metrics.segmentation_shift_consistency(
                wrapped.predict_classes, inputs, targets, mode="circular",
                num_shifts=VALIDATION_SEG_SHIFTS, max_shift=self.max_shift,
                ignore_label=self.ignore_index, seed=self.seed, batch_size=bs))
        else:
            result["accuracy"] = 100.0 * float(np.mean(outputs == targets))
            result["circular_consistency"] = float(metrics.shift_consistency(
                wrapped.predict_classes, inputs, mode="circular", max_shift=self.max_shift,
                seed=self.seed, batch_size=bs, protocol="cifar"))
        return result
