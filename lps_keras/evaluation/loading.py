"""Models and data for evaluation: `LoadedModel`, `load_arrays`, `settings_from_config`.

A `LoadedModel` is always called on raw images (float32 on the 0-255 scale, NHWC): a Keras
model is wrapped with the dataset's mean/std, an exported SavedModel normalises in its
signature. Its forward pass is one `tf.function` (traced once per input shape).

Regression (image-to-image, e.g. MRI reconstruction) data has no 0-255 scale: its
"raw" inputs are the arrays the data package yields (already instance-normalised), so a
Keras model of a regression dataset gets `(x - mean) / std` (no division by 255), and its
output images come back untouched.
"""

import os
import re
import zipfile
import zlib

import keras
import numpy as np
import tensorflow as tf

from lps_keras import rundir
from lps_keras.data import build_dataset, dataset_info
from lps_keras.data.errors import CorruptDatasetError

_SYNTHETIC = ("synthetic_shapes", "synthetic_shapes_seg", "synthetic_mri")


class ModelFileError(ValueError):
    """A model file exists but cannot be loaded (not a Keras zip, truncated, damaged); the
    message names the file and says what to do."""


def _read_json_object(path, advice):
    """The JSON object (dict) stored at `path`; `rundir.InvalidJSONError` naming the file
    and ending with `advice` when it is not UTF-8 JSON holding an object."""
    try:
        value = rundir.read_json(path)
    except rundir.InvalidJSONError as e:
        raise rundir.InvalidJSONError(f"{e} {advice}") from None
    except UnicodeDecodeError as e:
        raise rundir.InvalidJSONError(f"{path} is not valid JSON (not UTF-8 text: {e}). "
                                      f"{advice}") from None
    if not isinstance(value, dict):
        raise rundir.InvalidJSONError(
            f"{path} is not valid: it holds a JSON {type(value).__name__}, not an object "
            f"({{...}}). {advice}")
    return value


def _load_keras_file(path):
    """`keras.saving.load_model(path)`, with `ModelFileError` naming the file when it is not
    a readable Keras zip (Keras itself reports such a file as "File not found")."""
    advice = ("It is damaged or not a Keras model (e.g. an interrupted save or copy): "
              "restore it from a backup, or retrain (train.py) to write a new one.")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path} is not a Keras model file: a .keras file is a zip "
                             f"archive and this one is not (or is truncated). {advice}")
    try:
        return keras.saving.load_model(path)
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, OSError, ValueError,
            TypeError) as e:
        raise ModelFileError(
            f"Cannot load the Keras model file {path} ({type(e).__name__}: "
            f"{str(e).strip()[:500]}). {advice}") from None


class LoadedModel:
    """A model from a run directory, a `.keras` file or a SavedModel directory.

    Call it on raw images (float32 in [0, 255], NHWC) to get logits (numpy);
    `predict_classes` returns the argmax class ids. Both run one compiled `tf.function`.
    For a regression dataset (`DatasetInfo.task == "regression"`) the inputs are the data
    package's arrays as they are (no 0-255 scale) and the call returns the output images.

    Args:
        path: a run directory of `train.py` (holding `config.json` and `model.keras`), a
            `.keras` file, or a SavedModel version directory (holding `saved_model.pb`, and
            `export_metadata.json` when written by `lps_keras.export`).
        mean, std: the per-channel normalisation of a Keras model (0-1 scale); default:
            the statistics of the model's dataset when it is known (from `config.json`).
            Unused for a SavedModel, which normalises itself.
        name: label for tables and plots; default: the config name (`config.json`), the
            export name (`export_metadata.json`) or the `.keras` file's stem.

    Attributes:
        name: the label.
        path: the absolute path given.
        config: the run's resolved config (dict), when a `config.json` is found.
        metadata: the export metadata (dict), for a SavedModel written by `lps_keras.export`.
        run_dir: the run directory, when `path` is one (or a `model.keras` inside one).

    Raises:
        FileNotFoundError: with a message saying what was expected at `path`.
        lps_keras.rundir.InvalidJSONError: (a ValueError) naming a `config.json` or
            `export_metadata.json` that is not a UTF-8 JSON object, and saying what to do.
        ModelFileError: (a ValueError) naming a `.keras` file that exists but cannot be
            loaded (not a zip, truncated, damaged), and saying what to do.
    """

    def __init__(self, path, mean=None, std=None, name=None):
        path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        self.path = path
        self.config = None
        self.metadata = None
        self.run_dir = None
        self._keras = None
        self._serve = None
        if rundir.is_run_directory(path):
            self.run_dir = path
            keras_path = rundir.RunDirectory(path).model_path
            if not os.path.exists(keras_path):
                raise FileNotFoundError(
                    f"Run directory {path} has no {rundir.MODEL}: the run has not finished. "
                    "Re-run train.py with the same flags to resume and complete it."
                )
            path = keras_path
        elif path.endswith(".keras") and rundir.is_run_directory(os.path.dirname(path)):
            self.run_dir = os.path.dirname(path)
        if self.run_dir is not None:
            self.config = _read_json_object(
                rundir.RunDirectory(self.run_dir).config_path,
                "Restore it from a backup (train.py writes it when the run starts), or copy "
                f"{rundir.MODEL} out of the run directory and evaluate the copy, naming its "
                "dataset.")
        if path.endswith(".keras"):
            if not os.path.exists(path):
                raise FileNotFoundError(f"No Keras model file at {path}.")
            # Registers what a saved model can hold (layers, the models' own blocks, the
            # metric and schedules) for deserialization.
            import lps_keras.layers  # noqa: F401
            import lps_keras.metrics  # noqa: F401
            import lps_keras.models  # noqa: F401
            import lps_keras.training.schedules  # noqa: F401

            self._keras = _load_keras_file(path)
        elif os.path.exists(os.path.join(path, "saved_model.pb")):
            from lps_keras.export import METADATA_FILENAME

            meta_path = os.path.join(path, METADATA_FILENAME)
            if os.path.exists(meta_path):
                self.metadata = _read_json_object(
                    meta_path, "Restore it from a backup, or export the model again "
                    "(lps_keras.export).")
            self._loaded = tf.saved_model.load(path)  # keeps the variables alive
            self._serve = self._loaded.signatures.get("serving_float") or \
                self._loaded.signatures["serving_default"]
            self._input_name, spec = next(iter(
                self._serve.structured_input_signature[1].items()))
            self._input_dtype = spec.dtype
        else:
            raise FileNotFoundError(
                f"{path} is neither a run directory (with {rundir.CONFIG}), a .keras file nor a "
                "SavedModel directory (with saved_model.pb)."
            )
        self.name = name or self._default_name()
        self.dataset_task = None
        if self._keras is not None and self.dataset:
            if mean is None:
                info = dataset_info(self.dataset)
                mean, std = info.mean, info.std
                self.dataset_task = info.task
            else:
                try:
                    self.dataset_task = dataset_info(self.dataset).task
                except ValueError:
                    pass
        self._set_normalisation(mean, std)
        self._compile()

    @classmethod
    def from_keras(cls, model, mean, std, name=None, task=None):
        """Wraps an in-memory Keras model that expects normalised inputs.

        The result is called on raw pixels like any `LoadedModel`; it runs
        `model((x / 255 - mean) / std, training=False)`, or `model((x - mean) / std,
        training=False)` for `task="regression"` (the dataset's task).
        """
        self = cls.__new__(cls)
        self.path = self.config = self.metadata = self.run_dir = None
        self._keras, self._serve = model, None
        self.name = name or model.name
        self.dataset_task = task
        self._set_normalisation(mean, std)
        self._compile()
        return self

    # ---------------------------------------------------------------- description
    def _default_name(self):
        if self.config and self.config.get("name"):
            return str(self.config["name"])
        if self.metadata and self.metadata.get("name"):
            return str(self.metadata["name"])
        base = os.path.basename(self.path.rstrip("/"))
        return base[:-len(".keras")] if base.endswith(".keras") else base

    @property
    def dataset(self):
        """The dataset name from `config.json` or `export_metadata.json`, or None."""
        if self.config:
            return (self.config.get("data") or {}).get("name") or None
        if self.metadata:
            return self.metadata.get("dataset") or None
        return None

    @property
    def task(self):
        """`"classification"` / `"segmentation"` from the export metadata; `"regression"`
        for a Keras model of a regression dataset whose output has its input's spatial
        size; otherwise None (unknown)."""
        task = (self.metadata or {}).get("task")
        if task is None and self.dataset_task == "regression" and self._image_to_image():
            return "regression"
        return task

    def _image_to_image(self):
        try:
            inputs = tuple(self._keras.inputs[0].shape)
            outputs = tuple(self._keras.outputs[0].shape)
        except (AttributeError, IndexError, TypeError, ValueError):
            return False
        return len(inputs) == len(outputs) == 4 and inputs[1:3] == outputs[1:3]

    @property
    def _pixel_scale(self):
        # Raw images are 0-255 except for regression data, which is used as it is.
        return 1.0 if self.dataset_task == "regression" else 255.0

    # ---------------------------------------------------------------- forward
    def normalise_with(self, mean, std, task=None):
        """Sets the normalisation of a Keras model that has none yet (e.g. a bare
        `.keras` file whose dataset is only known later); a no-op otherwise. `task`: the
        dataset's task, when not known yet (`"regression"`: no 0-255 scale)."""
        if self._keras is None:
            return
        if task is not None and self.dataset_task is None:
            self.dataset_task = task
            self._compile()  # the scale is read when tracing
        if self.mean is None:
            self._set_normalisation(mean, std)

    def _set_normalisation(self, mean, std):
        self.mean = np.asarray(mean, np.float32) if mean is not None else None
        self.std = np.asarray(std, np.float32) if std is not None else None

    def _logits(self, images):
        if self._serve is not None:
            outputs = self._serve(**{self._input_name: tf.cast(images, self._input_dtype)})
            # Classifiers and segmenters serve `logits`; regression models `outputs`.
            key = "logits" if "logits" in outputs else "outputs"
            return tf.cast(outputs[key], tf.float32)
        if self.mean is None:
            raise ValueError(
                f"Model {self.name}: a Keras model needs the dataset mean/std to normalise "
                "raw images; pass `mean` and `std` (or load it from a run directory)."
            )
        x = (images / self._pixel_scale - self.mean) / self.std
        return tf.cast(self._keras(x, training=False), tf.float32)

    def _compile(self):
        # reduce_retracing: one trace per image shape, whatever the batch size.
        self._logits_fn = tf.function(self._logits, reduce_retracing=True)
        self._classes_fn = tf.function(
            lambda x: tf.argmax(self._logits(x), axis=-1, output_type=tf.int32),
            reduce_retracing=True)

    def __call__(self, images):
        """Logits (numpy float32) of raw images `[B, H, W, C]` on the 0-255 scale (output
        images of a regression model's inputs)."""
        return self._logits_fn(tf.convert_to_tensor(np.asarray(images, np.float32))).numpy()

    def predict_classes(self, images):
        """Argmax class ids (numpy int32, `[B]` or `[B, H, W]`) of raw images."""
        return self._classes_fn(tf.convert_to_tensor(np.asarray(images, np.float32))).numpy()


def default_output_dir(model, cwd=None):
    """Where `eval.py` writes when no `--output_dir` is given.

    `<run_dir>/eval` for a run directory (or its `model.keras`); otherwise
    `<cwd>/eval/<label>`. Never a directory inside a SavedModel (a server may be loading
    it) or beside a `.keras` file the user keeps elsewhere.
    """
    if model.run_dir:
        return rundir.RunDirectory(model.run_dir).eval_dir
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", model.name).strip("._") or "model"
    return os.path.join(os.path.abspath(cwd or os.getcwd()), rundir.EVAL, label)


def load_arrays(dataset, split, data_dir=None, num_examples=None, seed=0, image_size=None,
                resize_size=None, batch_size=100, crop_size=None, source="auto", holdout=0):
    """Raw images (float32, 0-255 scale) and targets of a split, in memory.

    Returns the first `num_examples` examples of the split (all when None) in the split's
    order, without augmentation: class ids `[N]` or masks `[N, H, W]` as targets.
    Regression (MRI) datasets return `(inputs, targets)`, both float32 `[N, H, W, 1]` in
    model units (normalised zero-filled inputs and targets; nothing on a 0-255 scale).
    Synthetic data is generated for exactly `num_examples` (its generators are
    prefix-stable, so this is the prefix of the full split). `holdout`: see
    `build_dataset` (the `"holdout"` split of CIFAR-10).

    Raises:
        DatasetNotFoundError, CorruptDatasetError: see `build_dataset`; a corrupt image
            file met while reading raises `CorruptDatasetError` naming it.
    """
    kwargs = dict(data_dir=data_dir, training=False, augment="none", normalize=False,
                  seed=seed, source=source, holdout=holdout)
    if image_size:
        kwargs["image_size"] = image_size
    if resize_size:
        kwargs["resize_size"] = resize_size
    if crop_size:
        kwargs["crop_size"] = crop_size
    if num_examples and dataset in _SYNTHETIC:
        kwargs["num_examples"] = num_examples
    images, targets, count = [], [], 0
    try:
        for x, y in build_dataset(dataset, split, batch_size, **kwargs):
            images.append(x.numpy().astype(np.float32))
            targets.append(y.numpy())
            count += len(images[-1])
            if num_examples and count >= num_examples:
                break
    except tf.errors.OpError as e:
        # Checks inside the pipeline (e.g. a corrupt image file) can only raise TF errors.
        error = CorruptDatasetError.from_tf_error(e)
        if error is None:
            raise
        raise error from None
    if not images:
        raise ValueError(f"The {split!r} split of {dataset} is empty.")
    images, targets = np.concatenate(images), np.concatenate(targets)
    if num_examples:
        images, targets = images[:num_examples], targets[:num_examples]
    return images, targets


def settings_from_config(config):
    """The evaluation settings of a run config (a dict or `ConfigDict`), as a dict.

    Keys: `dataset`, `split`, `data_dir`, `num_examples` (None: the whole split),
    `image_size`, `crop_size`, `source`, `seed`, `batch_size`, `max_shift` (the
    classification consistency range) and `seg_max_shift` (mASSC). `train.py` and
    `eval.py` both evaluate a run with exactly these, so they score the same images with
    the same shifts.
    """
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    data, ev = config.get("data", {}), config.get("eval", {})
    limits = [int(ev.get("num_examples") or 0)]
    if data.get("name") in _SYNTHETIC:  # num_eval_examples only applies to synthetic data
        limits.append(int(data.get("num_eval_examples") or 0))
    limits = [n for n in limits if n > 0]
    return {
        "dataset": data.get("name"),
        "split": ev.get("split") or "test",
        "data_dir": data.get("data_dir") or None,
        "num_examples": min(limits) if limits else None,
        "image_size": int(data.get("image_size") or 0) or None,
        "crop_size": int(data.get("crop_size") or 0) or None,
        "source": data.get("source") or "auto",
        "seed": int(config.get("seed") or 0),
        "batch_size": int(ev.get("batch_size") or 100),
        "max_shift": ev.get("max_shift"),
        "seg_max_shift": ev.get("seg_max_shift"),
    }
