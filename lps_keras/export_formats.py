"""Export classifiers, segmenters and U-Nets to TFLite (builtin ops only) and ONNX.

Both formats hold the bare model function, not the SavedModel's serving signatures:

    images (float32 `[batch, H, W, channels]`, raw pixels on the `input_scale` scale, e.g.
            0-255; regression models: model units, `input_scale` 1)
      -> x = (images / input_scale - mean) / std      (in the graph, as the SavedModel)
      -> classification: `logits` float32 `[B, C]`, `probabilities` float32 `[B, C]`,
         `classes` int64 `[B]`;
         segmentation: `logits` float32 `[B, H, W, C]`, `masks` int64 `[B, H, W]`;
         regression (`task="regression"`, e.g. an MRI U-Net): `outputs` float32
         `[B, H, W, out_channels]`.

The input is named `images` and the outputs carry the SavedModel's names. What is left out,
and why: the SavedModel's graph asserts (image shape, NaN/inf pixels) use string and
`Assert` ops that neither TFLite builtins nor onnxruntime run; the uint8 signature (cast
uint8 pixels to float32 before calling); the empty-batch guard. Callers must therefore
feed finite float32 pixels of the exported size themselves. `H` and `W` are fixed (TFLite
needs static spatial sizes; ONNX is kept fixed too); the batch size is free.

Numerics per format:

- ONNX keeps the model's float64 selection scores and float64 global pooling (onnxruntime
  runs float64 on CPU), so the selections follow circular shifts as exactly as in Keras.
  (The float64 pools are a sum and a division, `lps_keras.layers.reductions.mean`:
  onnxruntime has no float64 `GlobalAveragePool`.) Opset `ONNX_OPSET` (17: supported by
  every onnxruntime since 1.13 and by tf2onnx 1.17).
- TFLite builtin kernels have no float64, so the model is traced inside
  `lps_keras.layers.reductions.float32_selection()`: scores and pooled features accumulate
  in float32. Selections then follow shifts except between components whose scores are
  within float32 rounding of each other (near-ties, rare for trained models), and logits of
  shifted images agree to float32 rounding instead of bit for bit.

The converters: TFLite's comes with TensorFlow; ONNX needs `tf2onnx` (and `onnxruntime` to
run the result), imported only by `export_onnx`.

Command line (see `python -m lps_keras.export_formats --help`):

    python -m lps_keras.export_formats --model=run_dir_or_model.keras --format=tflite \\
        --output=model.tflite [--image-size=32] [--mean=...] [--std=...]
"""

import argparse
import os
import sys

import keras
import tensorflow as tf

from lps_keras.export import check_export_arguments
from lps_keras.layers.reductions import float32_selection

FORMATS = ("tflite", "onnx", "saved_model")
ONNX_OPSET = 17
INPUT_NAME = "images"


class ExportFormatError(ValueError):
    """An export to TFLite or ONNX cannot be made (bad argument, missing converter)."""


def export_tflite(model, path, *, task="auto", mean=None, std=None, input_scale=None,
                  image_size=None):
    """Writes `model` as a TFLite flatbuffer at `path` (builtin ops only); returns `path`.

    The file has one signature, `serving_default`, with the input `images` and the outputs
    described in the module docstring. Arguments are those of
    `lps_keras.export.export_saved_model`; the served size must be fixed: the model's
    input size, or `image_size=(H, W)` for a model built with free sizes.
    Runs with the stock `tf.lite.Interpreter` (no Select TF ops)."""
    fn, _ = _frozen_function(model, "TFLite", task=task, mean=mean, std=std,
                             input_scale=input_scale, image_size=image_size,
                             float32_only=True)
    module = tf.Module()
    module.predict = fn
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [fn.get_concrete_function()], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    content = converter.convert()
    _write(path, content)
    return os.fspath(path)


def export_onnx(model, path, *, task="auto", mean=None, std=None, input_scale=None,
                image_size=None, opset=ONNX_OPSET):
    """Writes `model` as an ONNX model at `path` (tf2onnx, opset `opset`); returns `path`.

    Input `images` and outputs as in the module docstring (float64 selection kept; see
    there). Arguments as in `export_tflite`. Needs the `tf2onnx` package."""
    try:
        import tf2onnx
    except ImportError as e:
        raise ExportFormatError(
            f"export_onnx needs the tf2onnx package ({e}); install it with "
            "`pip install tf2onnx onnxruntime`.") from None
    fn, names = _frozen_function(model, "ONNX", task=task, mean=mean, std=std,
                                 input_scale=input_scale, image_size=image_size,
                                 float32_only=False)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature,
                                             opset=int(opset))
    _rename_outputs(proto, names)
    _write(path, proto.SerializeToString())
    return os.fspath(path)


# ------------------------------------------------------------------------------ internals


def _frozen_function(model, fmt, *, float32_only, **kwargs):
    """A `tf.function` images -> named outputs with the weights as constants, and the
    output names in the order of its flat outputs."""
    spec = check_export_arguments(model, **kwargs)
    if None in spec["served_hw"]:
        raise ExportFormatError(
            f"{fmt} export needs a fixed image size, but the model's input size is "
            f"{tuple(spec['served_hw'])}: pass image_size=(height, width) (CLI: "
            "--image-size=H,W).")
    height, width = spec["served_hw"]
    model_dtype = keras.backend.standardize_dtype(model.inputs[0].dtype)
    mean = tf.constant(spec["mean"], tf.float32)
    std = tf.constant(spec["std"], tf.float32)
    scale = tf.constant(spec["input_scale"], tf.float32)
    signature = [tf.TensorSpec([None, height, width, spec["in_channels"]], tf.float32,
                               name=INPUT_NAME)]
    task = spec["task"]

    @tf.function(autograph=False, input_signature=signature)
    def predict(images):
        x = (images / scale - mean) / std
        logits = tf.cast(model(tf.cast(x, model_dtype), training=False), tf.float32)
        if task == "regression":
            return {"outputs": tf.identity(logits, name="outputs")}
        out = {"logits": tf.identity(logits, name="logits")}
        if task == "classification":
            out["probabilities"] = tf.nn.softmax(logits, axis=-1, name="probabilities")
            out["classes"] = tf.argmax(logits, axis=-1, output_type=tf.int64, name="classes")
        else:
            out["masks"] = tf.argmax(logits, axis=-1, output_type=tf.int64, name="masks")
        return out

    if float32_only:
        with float32_selection():
            concrete = predict.get_concrete_function()
    else:
        concrete = predict.get_concrete_function()
    # Weights as constants: the converters otherwise keep some Keras variables as resource
    # variables, which TFLite leaves uninitialised (NaN outputs).
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(concrete)
    structure = concrete.structured_outputs

    @tf.function(autograph=False, input_signature=signature)
    def frozen_predict(images):
        return tf.nest.pack_sequence_as(structure, frozen(images))

    return frozen_predict, list(tf.nest.flatten({k: k for k in structure}))


def _rename_outputs(proto, names):
    """Names the ONNX graph outputs `names` (tf2onnx names them after TF tensors)."""
    if len(proto.graph.output) != len(names):
        raise ExportFormatError(f"unexpected ONNX outputs {[o.name for o in proto.graph.output]}")
    renames = {}
    for output, name in zip(proto.graph.output, names, strict=True):
        renames[output.name] = name
        output.name = name
    for node in proto.graph.node:
        for i, value in enumerate(node.output):
            if value in renames:
                node.output[i] = renames[value]
        for i, value in enumerate(node.input):
            if value in renames:
                node.input[i] = renames[value]


def _write(path, content):
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(content)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- command line


def _numbers(text):
    values = [float(v) for v in text.split(",")]
    return values[0] if len(values) == 1 else values


def _size(text):
    values = [int(v) for v in text.split(",")]
    return values[0] if len(values) == 1 else tuple(values)


def _load(path):
    """The Keras model at `path` (a `.keras` file or a run directory) and, for a run
    directory, its dataset's name (else None)."""
    from lps_keras import rundir
    from lps_keras.evaluation.loading import _load_keras_file

    dataset = None
    if os.path.isdir(path):
        if not rundir.is_run_directory(path):
            raise ExportFormatError(f"{path} is a directory without config.json: pass a run "
                                    "directory or a .keras model file.")
        config = rundir.read_json(os.path.join(path, rundir.CONFIG))
        data = config.get("data") if isinstance(config, dict) else None
        dataset = data.get("name") if isinstance(data, dict) else None
        path = os.path.join(path, rundir.MODEL)
    if not os.path.isfile(path):
        raise ExportFormatError(f"No model file at {path}: pass a .keras file or a run "
                                "directory holding model.keras.")
    return _load_keras_file(path), dataset


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m lps_keras.export_formats",
        description="Export a classifier, segmenter or U-Net to TFLite, ONNX or a "
                    "SavedModel.")
    parser.add_argument("--model", required=True, help=".keras file or run directory")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--output", required=True,
                        help="output file (tflite, onnx) or export directory (saved_model)")
    parser.add_argument("--task", default="auto",
                        choices=("auto", "classification", "segmentation", "regression"),
                        help="default: a run directory's dataset task, else from the "
                             "output shape (rank 2: classification, 4: segmentation)")
    parser.add_argument("--image-size", type=_size, default=None, help="H or H,W")
    parser.add_argument("--mean", type=_numbers, default=None,
                        help="per-channel mean on the 0-1 scale, e.g. 0.4914,0.4822,0.4465 "
                             "(as in training; default for a run directory: its dataset's)")
    parser.add_argument("--std", type=_numbers, default=None, help="per-channel std")
    parser.add_argument("--input-scale", type=float, default=None)
    args = parser.parse_args(argv)
    options = dict(task=args.task, mean=args.mean, std=args.std,
                   input_scale=args.input_scale, image_size=args.image_size)
    try:
        model, dataset = _load(args.model)
        if dataset is not None:
            # A run directory: its dataset's task, and normalise as in training.
            from lps_keras.data import dataset_info

            info = dataset_info(dataset)
            if args.mean is None and args.std is None:
                options.update(mean=info.mean, std=info.std)
            if args.task == "auto":
                options["task"] = info.task
        if args.format == "saved_model":
            from lps_keras.export import export_saved_model

            written = export_saved_model(model, args.output, **options)
        else:
            export = export_tflite if args.format == "tflite" else export_onnx
            written = export(model, args.output, **options)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a converter's own failure: one line, no traceback
        message = " ".join(str(e).split())[:1000]
        print(f"error: the {args.format} export failed ({type(e).__name__}: {message})",
              file=sys.stderr)
        return 2
    print(written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
