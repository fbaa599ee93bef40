"""Per-epoch validation of a training run on a held-out split.

`config.eval.validation_split` names the split (empty: no validation). The training loop
calls the `Validator` after every epoch and records its metrics as `val_<metric>` in
`history.jsonl` and under `validation/` in TensorBoard. The validation split is never the
test split: the test metrics of `results.json` stay untouched by model selection.

Regression runs (U-Nets) report PSNR (dB), SSIM and NMSE of `lps_keras.metrics`, the
definitions of the final evaluation, on the first `config.eval.num_validation_examples`
examples of the split (0: all of them).
"""

import numpy as np
import tensorflow as tf

from lps_keras.errors import ConfigError
from lps_keras.evaluation.loading import load_arrays


class Validator:
    """Scores a model on one split of regression data.

    Args:
        dataset: the dataset name (its task must be `"regression"`).
        split: the split to score (not `"test"`).
        batch_size: images per forward pass.
        data_settings: `load_arrays` keyword arguments (`data_dir`, `num_examples`,
            `seed`, `image_size`, `crop_size`, `source`).
    """

    def __init__(self, dataset, split, batch_size, **data_settings):
        self.dataset = dataset
        self.split = split
        self.batch_size = int(batch_size)
        self.data_settings = data_settings
        self._arrays = None

    @classmethod
    def from_config(cls, config, info):
        """The run's validator, or None when `config.eval.validation_split` is empty."""
        split = config.eval.get("validation_split") or ""
        if not split:
            return None
        if info.task != "regression":
            raise ConfigError(
                "config.eval.validation_split: per-epoch validation is implemented for "
                f"regression data; {info.name} is {info.task} data. Leave it empty.")
        if split not in info.splits or split == config.eval.split:
            raise ConfigError(
                f"config.eval.validation_split: {split!r} must be a split of {info.name} "
                f"({', '.join(info.splits)}) other than the test split "
                f"config.eval.split={config.eval.split!r}.")
        data = config.data
        return cls(data.name, split, config.eval.batch_size,
                   data_dir=data.data_dir or None,
                   num_examples=int(config.eval.get("num_validation_examples") or 0) or None,
                   seed=int(config.seed), image_size=data.get("image_size") or None,
                   crop_size=data.get("crop_size") or None, source=data.get("source") or "auto")

    def arrays(self):
        """The validation inputs and targets (read once)."""
        if self._arrays is None:
            self._arrays = load_arrays(self.dataset, self.split, **self.data_settings)
        return self._arrays

    def __call__(self, model):
        from lps_keras.metrics import nmse, psnr, ssim

        inputs, targets = self.arrays()
        forward = tf.function(lambda x: model(x, training=False))
        outputs = np.concatenate([
            np.asarray(forward(tf.constant(inputs[i:i + self.batch_size])))
            for i in range(0, len(inputs), self.batch_size)])
        return {"psnr": float(psnr(targets, outputs)), "ssim": float(ssim(targets, outputs)),
                "nmse": float(nmse(targets, outputs))}
