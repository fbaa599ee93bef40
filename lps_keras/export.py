"""Export classifiers, segmenters and image-to-image regressors as TF Serving SavedModels.

`export_saved_model` writes `export_dir/<name>/<version>/`, the layout TensorFlow Serving
scans (point it at `export_dir/<name>`), with two signatures whose input is named `images`,
so clients need neither lps_keras nor Keras nor any preprocessing code.

Classification and segmentation (RGB models; the input is raw pixels):

- `serving_default`: uint8 `[batch, H, W, 3]` (0-255 with the default `input_scale`);
- `serving_float`: float32 `[batch, H, W, 3]` on the same scale, for images that are
  already floats (e.g. resized ones).

Regression (image-to-image models such as `lps_keras.models.unet`, whose inputs are
already in model units, e.g. instance-normalised MRI): both `serving_default` and
`serving_float` take float32 `[batch, H, W, C_in]` (the model's input channels) and are the
same computation; there is no uint8 path. `serving_float` is kept so that every export has
a float32 signature of that name (what `lps_keras.evaluation` loads).

Every signature normalises in the graph with `(cast(images, float32) / input_scale - mean)
/ std` (for regression the defaults make this the identity) and runs the model in
inference mode (`training=False`). Outputs are named:

- classification: `logits` (float32 `[B, C]`), `probabilities` (softmax of the logits,
  float32 `[B, C]`) and `classes` (int64 argmax, `[B]`);
- segmentation: `logits` (float32 `[B, H, W, C]`) and `masks` (int64 argmax over classes,
  `[B, H, W]`);
- regression: `outputs` (float32 `[B, H, W, C_out]`), the model's output as is (in model
  units: no inverse of the input normalisation is applied).

`H` and `W` are fixed when the model's input size is fixed (or `image_size` is given) and
`None` otherwise; the batch size is always free. A free size may have to be a multiple of
`size_multiple` (a U-Net's `2**levels`, derived from the model; see `export_saved_model`).
Images of another size are rejected with an error that names the expected size (or the
size rule) and the received shape: they are not resized, because a silent resize would
change what a shift-invariant model sees.

The SavedModel carries its preprocessing and class names as assets as well:
`assets/preprocessing.json` (formula, input scale, mean, std, task, size rule) and, when the
classes are known, `assets/class_names.txt` (one per line, in label order); after
`tf.saved_model.load` they are `loaded.preprocessing_file.asset_path` and
`loaded.class_names_file.asset_path`. They travel with the SavedModel when a server copies
only its directory.

Input checks and edge cases of the serving graph:

- a batch of 0 images returns empty outputs of the documented dtypes and shapes (`[0, C]`,
  `[0]`, `[0, H, W, C_out]`, ...), not an error;
- float32 images containing NaN or inf are rejected with an `InvalidArgumentError` whose
  message names `images` and says it contains NaN or inf (instead of silently returning
  NaN outputs); uint8 images are always finite.

Versions are written atomically (`lps_keras.versioned_dir`): the SavedModel goes to a
hidden temporary sibling (`export_dir/<name>/.<version>.tmp-XXXX`, which servers ignore
because its name is not an integer) and is renamed into place only once complete, so a
server never loads a half-written version. An exception removes the temporary directory;
a process killed mid-export can leave one behind, which is safe to delete.
"""

import dataclasses
import datetime
import hashlib
import json
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from lps_keras import versioned_dir
from lps_keras._version import __version__
from lps_keras.checks import check_non_negative_int, check_positive_number, is_int

TASKS = ("auto", "classification", "segmentation", "regression")
UINT8_SIGNATURE = "serving_default"
FLOAT_SIGNATURE = "serving_float"
INPUT_NAME = "images"
REGRESSION_OUTPUT = "outputs"
METADATA_FILENAME = "export_metadata.json"
# Inside the SavedModel's assets/ directory.
PREPROCESSING_ASSET = "preprocessing.json"
CLASS_NAMES_ASSET = "class_names.txt"


@dataclasses.dataclass(frozen=True)
class ServingSpec:
    """The checked facts one export is built from, for the signatures and the metadata.

    Attributes:
        name, version: the served model name and its version number.
        task: `"classification"`, `"segmentation"` or `"regression"`.
        num_classes: the size of the output's last axis (the output channels for
            regression).
        class_names: list of `num_classes` strings, or None (always None for regression).
        mean, std: `in_channels`-tuples of floats (the per-channel normalisation).
        input_scale: the float the images are divided by first.
        served_hw: the served `(height, width)`; an entry is None when free.
        output_shape: the model's output shape without the batch axis.
        dataset: the training dataset's name, or None.
        in_channels: the images' channels (3 for classification and segmentation).
        size_multiple: free heights and widths must be multiples of it (1: any size).
    """

    name: str
    version: int
    task: str
    num_classes: int
    class_names: list | None
    mean: tuple
    std: tuple
    input_scale: float
    served_hw: tuple
    output_shape: tuple
    dataset: str | None = None
    in_channels: int = 3
    size_multiple: int = 1


def export_saved_model(model, export_dir, *, name=None, version=None, task="auto", mean=None,
                       std=None, input_scale=None, image_size=None, class_names=None,
                       dataset=None, size_multiple=None, overwrite=False):
    """Exports `model` as a versioned TF Serving SavedModel that takes raw images.

    The SavedModel has two signatures with one input named `images`. For classification
    and segmentation `serving_default` takes uint8 images and `serving_float` takes float32
    images on the same scale (e.g. 0-255 for the default `input_scale`; use it for images
    that were resized or otherwise turned into floats). For regression both take float32
    images in model units (the same computation under two names). All compute
    `x = (cast(images, float32) / input_scale - mean) / std` per channel, call
    `model(x, training=False)` and return named outputs:

    - `task="classification"`: `logits` (float32 `[B, C]`), `probabilities` (softmax,
      float32 `[B, C]`), `classes` (int64 `[B]`);
    - `task="segmentation"`: `logits` (float32 `[B, H, W, C]`), `masks` (int64
      `[B, H, W]`, the argmax over classes);
    - `task="regression"`: `outputs` (float32 `[B, H, W, C_out]`, the model's output
      unchanged).

    Next to `saved_model.pb` the version directory holds `export_metadata.json` with the
    task, class names, dataset name, preprocessing, served image size, size rule,
    signatures and library versions.

    Args:
        model: A built single-input, single-output Keras model (functional or Sequential)
            whose input is `[batch, H, W, 3]` (H and W fixed or None) and whose output is
            `[batch, C]` logits (classifier) or `[batch, H', W', C]` logits (segmenter);
            or, for `task="regression"`, any `[batch, H, W, C_in]` input and a
            `[batch, H', W', C_out]` output (e.g. `lps_keras.models.unet`).
        export_dir: Base directory of the model repository (created if missing).
        name: Model name, the subdirectory of `export_dir` a server is pointed at.
            Defaults to `model.name`.
        version: Non-negative int. Defaults to 1 + the largest integer-named version
            already in `export_dir/<name>`, or 1 if there is none.
        task: `"classification"`, `"segmentation"`, `"regression"` or `"auto"` (output
            rank 2 means classification, rank 4 segmentation). `"auto"` never picks
            regression: a rank-4 output of the input's size is as likely segmentation
            logits as an image, and models exported with `"auto"` before regression existed
            must keep exporting as segmenters. Pass `task="regression"` (`train.py` does
            when the dataset's task is regression).
        mean: Per-channel mean on the `cast(images) / input_scale` scale: a number or one
            number per input channel (3 for RGB), e.g. `lps_keras.data.CIFAR10_MEAN`. None
            means 0 (no centring). Use the values the model was trained with.
        std: Per-channel standard deviation on the same scale: a positive number or one
            positive number per input channel, e.g. `lps_keras.data.CIFAR10_STD`. None
            means 1.
        input_scale: Positive number the images are divided by first. None (default)
            means 255 for classification and segmentation (uint8 images to [0, 1]) and 1
            for regression (images already in model units).
        image_size: Optional `(height, width)` (or one int for square images) to fix the
            served size of a model built with `input_shape=(None, None, 3)`. For a model
            with a fixed size it must be None or equal that size.
        class_names: Optional sequence of `C` strings, stored in the metadata (not for
            regression).
        dataset: Optional name of the dataset the model was trained on (an
            `lps_keras.data` name such as `"cifar10"`), stored in the metadata as
            `"dataset"`; `eval.py` evaluates on it by default.
        size_multiple: Positive int: a free served height or width must be a multiple of
            it (and at least it); the graph rejects other sizes. None (default) derives it
            from the model: `2**levels` for a `lps_keras.models.unet` (see
            `lps_keras.models.unet.size_multiple`), else 1 (any size). A fixed served size
            must be a multiple of it.
        overwrite: If False (default), an existing `version` raises `FileExistsError`. If
            True, it is replaced: the old directory is renamed aside, the new one renamed
            in, then the old one deleted.

    Returns:
        The path of the version directory, `export_dir/<name>/<version>`, as a string.

    Raises:
        ValueError: for an invalid argument or a model that is not an image model with a
            single rank-4, 3-channel input and a rank-2 or rank-4 output (for regression:
            a rank-4 input and a rank-4 output).
        FileExistsError: if the version exists and `overwrite` is False.

    Example:

    >>> from lps_keras.data import CIFAR10_MEAN, CIFAR10_STD
    >>> from lps_keras.models import resnet20
    >>> model = resnet20(num_classes=10, input_shape=(32, 32, 3), stem="cifar",
    ...                  downsampling="lps")
    >>> path = export_saved_model(model, "/tmp/models", name="cifar", mean=CIFAR10_MEAN,
    ...                           std=CIFAR10_STD)  # "/tmp/models/cifar/1"
    >>> served = tf.saved_model.load(path).signatures["serving_default"]
    >>> out = served(images=tf.zeros((4, 32, 32, 3), tf.uint8))
    >>> out["classes"].shape, out["probabilities"].shape
    (TensorShape([4]), TensorShape([4, 10]))
    """
    spec_args = check_export_arguments(
        model, name=name, version=version, task=task, mean=mean, std=std,
        input_scale=input_scale, image_size=image_size, class_names=class_names,
        dataset=dataset, size_multiple=size_multiple)
    name, version = spec_args.pop("name"), spec_args.pop("version")
    overwrite = bool(overwrite)
    # Nothing touches the disk before every argument has been checked.
    version, final_dir = versioned_dir.prepare(
        os.path.join(os.fspath(export_dir), name), version, overwrite)
    spec = ServingSpec(name=name, version=version, **spec_args)
    # Everything is written into a hidden, non-integer-named sibling (servers skip it) and
    # renamed into place once complete.
    metadata = _metadata(model, spec)
    with versioned_dir.staged(final_dir, overwrite) as tmp_dir, \
            tempfile.TemporaryDirectory() as asset_dir:
        signatures, root = _serving_signatures(model, spec)
        _attach_assets(root, metadata, asset_dir)
        tf.saved_model.save(
            root, tmp_dir, signatures=signatures,
            options=tf.saved_model.SaveOptions(experimental_custom_gradients=False),
        )
        with open(os.path.join(tmp_dir, METADATA_FILENAME), "w", encoding="utf-8") as f:
            json.dump(metadata, f, indent=2)
            f.write("\n")
    return final_dir


def check_export_arguments(model, *, name=None, version=None, task="auto",
                           mean=None, std=None, input_scale=None, image_size=None,
                           class_names=None, dataset=None, size_multiple=None):
    """Checks the arguments of `export_saved_model` without writing anything.

    Returns the checked values as a dict (`name`, `version`, `task`, `num_classes`,
    `class_names`, `mean`, `std`, `input_scale`, `served_hw`, `output_shape`, `dataset`,
    `in_channels`, `size_multiple`).
    `train.py` calls it before training, so an export cannot fail after it.

    Raises:
        ValueError: as `export_saved_model` would.
    """
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "export_saved_model needs the TensorFlow backend; set KERAS_BACKEND=tensorflow "
            f"(current backend: {keras.backend.backend()!r})."
        )
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}; got {task!r}.")
    in_shape, output_shape = _model_shapes(model)
    task = _resolve_task(task, output_shape)
    in_channels = _check_input_channels(in_shape, task)
    num_classes = output_shape[-1]
    size_multiple = _check_size_multiple(model, size_multiple)
    served_hw = _served_size(in_shape[1:3], image_size, size_multiple)
    mean = _per_channel(mean, 0.0, "mean", in_channels)
    std = _per_channel(std, 1.0, "std", in_channels)
    if any(s <= 0 for s in std):
        raise ValueError(f"`std` must be positive; got {std}.")
    if input_scale is None:
        input_scale = 1.0 if task == "regression" else 255.0
    input_scale = check_positive_number("input_scale", input_scale)
    if task == "regression" and class_names is not None:
        raise ValueError("`class_names` must be None for task='regression' (its outputs are "
                         f"images, not classes); got {class_names!r}.")
    class_names = _check_class_names(class_names, num_classes)
    if dataset is not None and (not isinstance(dataset, str) or not dataset):
        raise ValueError(f"`dataset` must be a non-empty string or None; got {dataset!r}.")

    name = check_name(model.name if name is None else name)
    if version is not None:
        version = _check_version(version)
    return dict(name=name, version=version, task=task, num_classes=num_classes,
                class_names=class_names, mean=mean, std=std, input_scale=input_scale,
                served_hw=served_hw, output_shape=output_shape, dataset=dataset,
                in_channels=in_channels, size_multiple=size_multiple)



def weights_fingerprint(model):
    """SHA-256 (hex) of every weight of `model`: its path, dtype, shape and bytes, in order.
    Stored in `export_metadata.json` as `weights_sha256`."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(f"{weight.path}|{value.dtype}|{value.shape}|".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def find_export(export_dir, name, fingerprint):
    """The version directory under `export_dir/name` whose metadata records the weights
    `fingerprint` (see `weights_fingerprint`), newest first; None when there is none.
    `train.py` uses it so that a rerun never publishes the same weights as a new version."""
    parent = os.path.join(os.fspath(export_dir), name)
    if not os.path.isdir(parent):
        return None
    versions = sorted((int(e) for e in os.listdir(parent) if e.isascii() and e.isdigit()),
                      reverse=True)
    for version in versions:
        path = os.path.join(parent, str(version), METADATA_FILENAME)
        try:
            with open(path, encoding="utf-8") as f:
                if json.load(f).get("weights_sha256") == fingerprint:
                    return os.path.join(parent, str(version))
        except (OSError, ValueError):
            continue
    return None


# ----------------------------------------------------------------------------- validation


def _model_shapes(model):
    """Returns the model's input shape and its output shape (without the batch)."""
    inputs = getattr(model, "inputs", None)
    outputs = getattr(model, "outputs", None)
    if not isinstance(model, keras.Model) or not inputs or not outputs:
        raise ValueError(
            "`model` must be a built Keras functional or Sequential model (one made from "
            f"`keras.Input`) so its input and output shapes are known; got {model!r}."
        )
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            "`model` must have one input (images) and one output (logits); it has "
            f"{len(inputs)} inputs and {len(outputs)} outputs. Wrap it in a model that "
            "returns only the logits."
        )
    in_shape = tuple(inputs[0].shape)
    if len(in_shape) != 4:
        raise ValueError(
            "`model` must take images `[batch, height, width, channels]` (RGB images "
            f"`[batch, height, width, 3]` unless task='regression'); its input shape is "
            f"{in_shape}."
        )
    return in_shape, tuple(outputs[0].shape)[1:]


def _check_input_channels(in_shape, task):
    """The images' channels: 3 for classification and segmentation, any known number for
    regression."""
    channels = in_shape[-1]
    if task == "regression":
        if channels is None:
            raise ValueError(
                "The model's input must have a known number of channels; its input shape is "
                f"{in_shape}.")
        return int(channels)
    if channels != 3:
        hint = (" For an image-to-image model (e.g. lps_keras.models.unet) pass "
                "task='regression'." if task == "segmentation" else "")
        raise ValueError(
            "`model` must take RGB images `[batch, height, width, 3]`; its input shape is "
            f"{in_shape}.{hint}"
        )
    return 3


def _resolve_task(task, output_shape):
    rank = len(output_shape) + 1
    expected = {"classification": 2, "segmentation": 4, "regression": 4}
    if task == "auto":
        # Never regression: a rank-4 output is segmentation unless the caller says so.
        inferred = [candidate for candidate, r in expected.items()
                    if r == rank and candidate != "regression"]
        if not inferred:
            raise ValueError(
                "Cannot infer the task from the model's output shape "
                f"{(None,) + output_shape}: expected rank 2 (classification logits) or rank 4 "
                "(segmentation logits). Make the model return logits of one of those shapes."
            )
        task = inferred[0]
    elif rank != expected[task]:
        what = "images `[batch, height, width, channels]`" if task == "regression" else "logits"
        raise ValueError(
            f"task={task!r} needs rank-{expected[task]} {what}, but the model's output shape "
            f"is {(None,) + output_shape}."
        )
    if output_shape[-1] is None:
        what = "channels" if task == "regression" else "classes"
        raise ValueError(
            f"The model's output must have a known number of {what} (its last axis); got "
            f"output shape {(None,) + output_shape}."
        )
    return task


def _check_size_multiple(model, size_multiple):
    """`size_multiple` checked, or derived from the model (a U-Net's `2**levels`, else 1)."""
    if size_multiple is None:
        from lps_keras.models.unet import size_multiple as unet_size_multiple

        return unet_size_multiple(model) or 1
    if isinstance(size_multiple, bool) or not is_int(size_multiple) or size_multiple < 1:
        raise ValueError(
            f"`size_multiple` must be None or a positive int; got {size_multiple!r}.")
    return int(size_multiple)


def _served_size(input_hw, image_size, size_multiple=1):
    served = _fixed_served_size(input_hw, image_size)
    for side in served:
        if side is not None and side % size_multiple:
            raise ValueError(
                f"The served size {tuple(served)} is not a multiple of size_multiple="
                f"{size_multiple} (the model's size rule); pass an image_size whose sides "
                "are multiples of it.")
    return served


def _fixed_served_size(input_hw, image_size):
    if image_size is None:
        return tuple(input_hw)
    if is_int(image_size):
        image_size = (image_size, image_size)
    image_size = tuple(image_size) if isinstance(image_size, (tuple, list)) else image_size
    if (not isinstance(image_size, tuple) or len(image_size) != 2
            or not all(is_int(d) and d > 0 for d in image_size)):
        raise ValueError(
            f"`image_size` must be None, a positive int or (height, width); got {image_size!r}."
        )
    image_size = tuple(int(d) for d in image_size)
    for fixed, wanted in zip(input_hw, image_size, strict=True):
        if fixed is not None and fixed != wanted:
            raise ValueError(
                f"`image_size={image_size}` conflicts with the model's fixed input size "
                f"{tuple(input_hw)}; pass image_size=None or rebuild the model with "
                "input_shape=(None, None, 3)."
            )
    return image_size


def _per_channel(value, default, what, channels=3):
    if value is None:
        value = default
    try:
        values = np.asarray(value, dtype="float64")
    except (TypeError, ValueError):
        values = np.full((0,), np.nan)  # reported below
    if values.ndim == 0:
        values = np.repeat(values, channels)
    if values.shape != (channels,) or not np.all(np.isfinite(values)):
        if channels == 1:
            rule = "None or one finite number (the model has one input channel)"
        else:
            per = "RGB channel" if channels == 3 else "input channel"
            rule = f"None, one number or {channels} finite numbers (one per {per})"
        raise ValueError(f"`{what}` must be {rule}; got {value!r}.")
    return tuple(float(v) for v in values)


def _check_class_names(class_names, num_classes):
    if class_names is None:
        return None
    if isinstance(class_names, str) or not all(isinstance(c, str) for c in class_names):
        raise ValueError(f"`class_names` must be a sequence of strings; got {class_names!r}.")
    class_names = list(class_names)
    if len(class_names) != num_classes:
        raise ValueError(
            f"`class_names` has {len(class_names)} entries but the model predicts "
            f"{num_classes} classes."
        )
    return class_names


def check_name(name):
    """`name` if it can be a served model name (a directory name)."""
    if (not isinstance(name, str) or name in ("", ".", "..") or name.startswith(".")
            or "/" in name or "\\" in name or os.sep in name):
        raise ValueError(
            "`name` must be a non-empty directory name without path separators that does "
            f"not start with '.'; got {name!r}."
        )
    return name


def _check_version(version):
    return check_non_negative_int(
        "version", version,
        note=" (TF Serving reads integer directory names) or None for the next free version")


# ------------------------------------------------------------------------- serving graph


def _serving_signatures(model, spec):
    """Traces the signatures of `spec` (a `ServingSpec`): uint8 `serving_default` and
    float32 `serving_float`, or for regression float32 under both names; returns them and
    the object to save.

    The graph checks the images' shape (`_check_image_shape`) and that they are finite
    (`_check_finite`), and answers a batch of 0 with empty outputs (see the module
    docstring)."""
    model_dtype = keras.backend.standardize_dtype(model.inputs[0].dtype)
    spatial = [None if d is None else int(d) for d in spec.served_hw]
    channels, multiple = spec.in_channels, spec.size_multiple
    task = spec.task
    mean = tf.constant(spec.mean, tf.float32)
    std = tf.constant(spec.std, tf.float32)
    scale = tf.constant(spec.input_scale, tf.float32)

    # One trace of the model, shared by both signatures.
    @tf.function(autograph=False, input_signature=[
        tf.TensorSpec([None, *spatial, channels], tf.float32, name=INPUT_NAME)])
    def predict(images):
        x = _check_finite(_check_image_shape(images, spatial, channels, multiple))
        x = (x / scale - mean) / std
        # An empty batch runs the model on one blank image and keeps none of its outputs:
        # some kernels fail on a batch of 0 (an upstream TF issue surfacing in
        # BatchNormalization after a convolution), and this gives outputs of the right
        # shapes and dtypes with a single trace of the model. Other batches pass as is.
        batch = tf.shape(x)[0]
        x = tf.ensure_shape(tf.cond(
            batch > 0, lambda: x,
            lambda: tf.zeros(tf.concat([[1], tf.shape(x)[1:]], axis=0), x.dtype)), x.shape)
        logits = tf.cast(model(tf.cast(x, model_dtype), training=False), tf.float32)
        logits = logits[:batch]
        if task == "regression":
            return {REGRESSION_OUTPUT: tf.identity(logits, name=REGRESSION_OUTPUT)}
        if task == "classification":
            return {
                "logits": tf.identity(logits, name="logits"),
                "probabilities": tf.nn.softmax(logits, axis=-1, name="probabilities"),
                "classes": tf.argmax(logits, axis=-1, output_type=tf.int64, name="classes"),
            }
        return {
            "logits": tf.identity(logits, name="logits"),
            "masks": tf.argmax(logits, axis=-1, output_type=tf.int64, name="masks"),
        }

    def signature(dtype):
        @tf.function(autograph=False, input_signature=[
            tf.TensorSpec([None, *spatial, channels], dtype, name=INPUT_NAME)])
        def serve(images):
            return predict(tf.cast(images, tf.float32))

        return serve.get_concrete_function()

    signatures = {sig: signature(tf.as_dtype(dtype))
                  for sig, dtype in _signature_dtypes(task).items()}
    # Track exactly the tf.Variables the graphs capture. Tracking the Keras model (or its
    # `keras.Variable` wrappers) instead makes SavedModel walk and retrace every layer, and
    # the wrappers get restored into copies that TF1-style loaders (TF Serving,
    # `saved_model_cli run`) never initialise ("Could not find variable ...").
    captured = {}
    for fn in signatures.values():
        for variable in fn.variables:
            captured.setdefault(id(variable), variable)
    root = tf.Module()
    root.captured_variables = list(captured.values())
    return signatures, root


def _attach_assets(root, metadata, asset_dir):
    """Puts the preprocessing (`assets/preprocessing.json`) and, when known, the class
    names (`assets/class_names.txt`, one per line in label order) inside the SavedModel,
    as tracked assets of `root` (`loaded.preprocessing_file.asset_path`,
    `loaded.class_names_file.asset_path`), so they travel with it wherever it is copied."""
    path = os.path.join(asset_dir, PREPROCESSING_ASSET)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({**metadata["preprocessing"], "task": metadata["task"],
                   "image_size": metadata["image_size"], "size_rule": metadata["size_rule"]},
                  f, indent=2)
        f.write("\n")
    root.preprocessing_file = tf.saved_model.Asset(path)
    if metadata["class_names"]:
        path = os.path.join(asset_dir, CLASS_NAMES_ASSET)
        with open(path, "w", encoding="utf-8") as f:
            f.write("".join(f"{name}\n" for name in metadata["class_names"]))
        root.class_names_file = tf.saved_model.Asset(path)


def _signature_dtypes(task):
    """Signature name to input dtype: uint8 and float32 for RGB tasks; float32 under both
    names for regression (images in model units)."""
    if task == "regression":
        return {UINT8_SIGNATURE: "float32", FLOAT_SIGNATURE: "float32"}
    return {UINT8_SIGNATURE: "uint8", FLOAT_SIGNATURE: "float32"}


def _size_rule(spatial, multiple):
    """The served-size rule in words, e.g. "height and width multiples of 8", or None."""
    free = [name for name, d in zip(("height", "width"), spatial, strict=True) if d is None]
    if multiple == 1 or not free:
        return None
    return f"{' and '.join(free)} positive multiples of {multiple}"


def _check_image_shape(images, spatial, channels=3, multiple=1):
    """Asserts in the graph that `images` is `[batch, H, W, channels]` with the served H,
    W (free sides: positive multiples of `multiple`).

    The signature declares the shape, but loaded signatures and TF Serving feed tensors
    without checking it; a wrong size would otherwise fail deep inside the network or,
    worse, give a prediction for an image the model was not built for.
    """
    shape = tf.raw_ops.Shape(input=images)
    # Padding with -1 lets the comparison run (and fail cleanly) for any rank.
    padded = tf.concat([shape, tf.constant([-1, -1, -1, -1])], axis=0)[:4]
    ok = tf.equal(tf.raw_ops.Rank(input=images), 4)
    for axis, size in ((1, spatial[0]), (2, spatial[1]), (3, channels)):
        if size is not None:
            ok = tf.logical_and(ok, tf.equal(padded[axis], size))
        elif multiple > 1:
            ok = tf.logical_and(ok, tf.logical_and(padded[axis] >= multiple,
                                                   tf.equal(padded[axis] % multiple, 0)))
    height, width = ("any" if d is None else str(d) for d in spatial)
    rule = _size_rule(spatial, multiple)
    if rule is None:
        rule_text = "resize or crop the images to that size before serving"
    else:
        rule_text = (f"{rule} (the size rule of the model); crop or pad the images to such a "
                     "size before serving")
    channel_name = "RGB" if channels == 3 else "channels"
    check = tf.debugging.Assert(ok, [
        f"lps_keras export: `images` must have shape [batch, {height}, {width}, {channels}] "
        f"(batch, height, width, {channel_name}); {rule_text}. Received shape:", shape,
    ], summarize=4, name="check_image_shape")
    with tf.control_dependencies([check]):
        return tf.identity(images)


def _check_finite(images):
    """Asserts in the graph that every pixel of `images` is finite.

    A NaN or inf pixel would otherwise flow through the network and come back as NaN
    probabilities (and an arbitrary class) without any error. The check passes trivially
    for uint8 images and for an empty batch.
    """
    check = tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(images)), [
        "lps_keras export: `images` contains NaN or inf; every pixel must be a finite "
        "number on the input_scale scale (e.g. 0-255, or model units for regression). "
        "Replace or drop those images before serving.",
    ], name="check_images_finite")
    with tf.control_dependencies([check]):
        return tf.identity(images)


# ------------------------------------------------------------------------------ metadata


def _metadata(model, spec):
    """The `export_metadata.json` content of `spec` (a `ServingSpec`)."""
    num_classes = spec.num_classes
    input_shape = [None, *spec.served_hw, spec.in_channels]
    if spec.task == "regression":
        out_hw = list(spec.output_shape[:2])
        outputs = {REGRESSION_OUTPUT: {"dtype": "float32",
                                       "shape": [None, *out_hw, num_classes]}}
    elif spec.task == "classification":
        outputs = {
            "logits": {"dtype": "float32", "shape": [None, num_classes]},
            "probabilities": {"dtype": "float32", "shape": [None, num_classes]},
            "classes": {"dtype": "int64", "shape": [None]},
        }
    else:
        out_hw = list(spec.output_shape[:2])
        outputs = {
            "logits": {"dtype": "float32", "shape": [None, *out_hw, num_classes]},
            "masks": {"dtype": "int64", "shape": [None, *out_hw]},
        }
    signatures = {
        sig: {"inputs": {INPUT_NAME: {"dtype": dtype, "shape": input_shape}},
              "outputs": outputs}
        for sig, dtype in _signature_dtypes(spec.task).items()
    }
    regression = spec.task == "regression"
    return {
        "name": spec.name,
        "version": spec.version,
        "model_name": model.name,
        "task": spec.task,
        "num_classes": None if regression else int(num_classes),
        "class_names": spec.class_names,
        "dataset": spec.dataset,
        "image_size": list(spec.served_hw),
        "in_channels": spec.in_channels,
        "out_channels": int(num_classes) if regression else None,
        "size_multiple": spec.size_multiple,
        "size_rule": _size_rule(spec.served_hw, spec.size_multiple),
        "preprocessing": {
            "formula": "(cast(images, float32) / input_scale - mean) / std",
            "input_scale": spec.input_scale,
            "mean": list(spec.mean),
            "std": list(spec.std),
        },
        "signatures": signatures,
        "library_versions": {
            "lps_keras": __version__,
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
        },
        "weights_sha256": weights_fingerprint(model),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
    }
