"""Evaluation behind `eval.py`: load any saved form of a model and apply a protocol.

Models are fed raw uint8-range images and normalise them themselves: a Keras model is
wrapped with the dataset's mean/std, an exported SavedModel does it in its signature. So a
standard (zero-filled) shift pads with black, as in the papers' protocols.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from lps_keras import metrics
from lps_keras.data import build_dataset, dataset_info

EVAL_MODES = ("class_accuracy", "shift_consistency", "segmentation")


class LoadedModel:
    """A model from a run directory, a `.keras` file or a SavedModel directory.

    Call it on raw images (float32 in [0, 255], NHWC) to get logits.

    Attributes:
        name: a label for tables and plots.
        config: the run's resolved config (dict) when loaded from a run directory.
    """

    def __init__(self, path, mean=None, std=None, name=None):
        path = os.path.abspath(os.path.expanduser(path))
        self.config = None
        self.name = name or os.path.basename(path.rstrip("/"))
        if os.path.isdir(path) and os.path.exists(os.path.join(path, "config.json")):
            with open(os.path.join(path, "config.json")) as f:
                self.config = json.load(f)
            keras_path = os.path.join(path, "model.keras")
            if not os.path.exists(keras_path):
                raise FileNotFoundError(
                    f"Run directory {path} has no model.keras: the run has not finished. "
                    "Re-run train.py with the same flags to resume and complete it."
                )
            path = keras_path
        if path.endswith(".keras"):
            if not os.path.exists(path):
                raise FileNotFoundError(f"No Keras model file at {path}.")
            import lps_keras  # noqa: F401  (registers the layers)

            self._keras = keras.saving.load_model(path)
            self._serve = None
        elif os.path.exists(os.path.join(path, "saved_model.pb")):
            loaded = tf.saved_model.load(path)
            signature = loaded.signatures.get("serving_float") or \
                loaded.signatures["serving_default"]
            self._keras = None
            self._loaded = loaded  # keep the variables alive
            self._serve = signature
        else:
            raise FileNotFoundError(
                f"{path} is neither a run directory (with config.json), a .keras file nor a "
                "SavedModel directory (with saved_model.pb)."
            )
        self.mean = np.asarray(mean, np.float32) if mean is not None else None
        self.std = np.asarray(std, np.float32) if std is not None else None

    def __call__(self, images):
        images = np.asarray(images, np.float32)
        if self._serve is not None:
            spec = next(iter(self._serve.structured_input_signature[1].values()))
            x = tf.constant(images.astype(spec.dtype.as_numpy_dtype))
            outputs = self._serve(**{next(iter(self._serve.structured_input_signature[1])): x})
            return outputs["logits"].numpy()
        if self.mean is None:
            raise ValueError("A Keras model needs the dataset mean/std to normalise images.")
        x = (images / 255.0 - self.mean) / self.std
        return keras.ops.convert_to_numpy(self._keras(x, training=False))


def load_arrays(dataset, split, data_dir=None, num_examples=None, seed=0, image_size=None,
                resize_size=None, batch_size=100):
    """Raw (uint8-range float32) images and targets of a split, in memory."""
    kwargs = dict(data_dir=data_dir, training=False, augment="none", normalize=False,
                  seed=seed)
    if image_size:
        kwargs["image_size"] = image_size
    if resize_size:
        kwargs["resize_size"] = resize_size
    images, targets, count = [], [], 0
    for x, y in build_dataset(dataset, split, batch_size, **kwargs):
        images.append(x.numpy().astype(np.float32))
        targets.append(y.numpy())
        count += len(images[-1])
        if num_examples and count >= num_examples:
            break
    images, targets = np.concatenate(images), np.concatenate(targets)
    if num_examples:
        images, targets = images[:num_examples], targets[:num_examples]
    return images, targets


def evaluate(model, eval_mode, dataset, *, split="test", data_dir=None, num_examples=None,
             seed=0, batch_size=64, protocol="cifar", max_shift=None, baseline=None):
    """Runs one protocol; returns a JSON-ready dict of percentages.

    `baseline` (another `LoadedModel`) is evaluated the same way for comparison.
    """
    if eval_mode not in EVAL_MODES:
        raise ValueError(f"`eval_mode` must be one of {EVAL_MODES}; got {eval_mode!r}.")
    info = dataset_info(dataset)
    models = [model] + ([baseline] if baseline is not None else [])
    result = {"eval_mode": eval_mode, "dataset": dataset, "split": split, "seed": seed,
              "models": {}}
    if eval_mode == "segmentation":
        images, masks = load_arrays(dataset, split, data_dir, num_examples, seed)
        result["num_examples"] = int(len(images))
        shift = 32 if max_shift is None else max_shift
        for m in models:
            preds = np.concatenate([np.argmax(m(images[i:i + batch_size]), -1)
                                    for i in range(0, len(images), batch_size)])
            confusion = metrics.confusion_matrix(masks, preds, info.num_classes,
                                                 ignore_label=info.ignore_index)
            result["models"][m.name] = {
                "mean_iou": 100.0 * metrics.mean_iou(confusion),
                **{f"{mode}_massc": metrics.segmentation_shift_consistency(
                    m, images, masks, mode=mode, max_shift=shift, ignore_label=info.ignore_index,
                    seed=seed, batch_size=batch_size) for mode in ("circular", "standard")},
            }
        return result

    if protocol == "imagenet":
        # Accuracy on the 224 centre crop; consistency on the 256 centre crop.
        images, labels = load_arrays(dataset, split, data_dir, num_examples, seed)
        cons_images, _ = load_arrays(dataset, split, data_dir, num_examples, seed,
                                     image_size=256, resize_size=256)
    else:
        images, labels = load_arrays(dataset, split, data_dir, num_examples, seed)
        cons_images = images
    result["num_examples"] = int(len(images))
    for m in models:
        entry = {"accuracy": metrics.accuracy(m, images, labels, batch_size=batch_size)}
        if eval_mode == "shift_consistency":
            for mode in ("circular", "standard"):
                entry[f"{mode}_consistency"] = metrics.shift_consistency(
                    m, cons_images, mode=mode, max_shift=max_shift, seed=seed,
                    batch_size=batch_size, protocol=protocol)
            top = max_shift if max_shift is not None else (32 if protocol == "imagenet" else 3)
            sizes = list(range(0, top + 1, max(1, top // 8)))
            entry["circular_vs_shift"] = {
                str(k): v for k, v in metrics.consistency_vs_shift(
                    m, cons_images, shifts=sizes, mode="circular", seed=seed,
                    batch_size=batch_size).items()}
            entry["standard_vs_shift"] = {
                str(k): v for k, v in metrics.consistency_vs_shift(
                    m, images, shifts=sizes, mode="standard", seed=seed,
                    batch_size=batch_size).items()}
        result["models"][m.name] = entry
    return result


def plot_consistency(result, path):
    """PNG of consistency against shift size, one line per model and shift mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, entry in result["models"].items():
        for mode, style in (("circular", "-o"), ("standard", "--s")):
            curve = entry.get(f"{mode}_vs_shift")
            if curve:
                sizes = [int(k) for k in curve]
                ax.plot(sizes, list(curve.values()), style, label=f"{name} ({mode})")
    ax.set_xlabel("shift size (pixels, max(|dy|, |dx|))")
    ax.set_ylabel("consistency with unshifted prediction (%)")
    ax.set_title(f"Shift consistency on {result['dataset']} {result['split']}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
