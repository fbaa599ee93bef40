"""Model benchmarks: each downsampling mode against the `strided` model of the same run.

For the U-Nets the four modes are the four networks of the APS-U comparison, and the
`strided` row is the baseline U-Net (see `UNET_VARIANTS`).
"""

import functools
import gc

import keras
import numpy as np
import tensorflow as tf

from benchmarks.macs import count_macs
from benchmarks.timing import interleaved_median_seconds, peak_memory_mib, record_case
from lps_keras import models
from lps_keras.models import blocks

MODES = ("strided", "blurpool", "aps", "lps")


def _resnet(depth, stem, size, classes):
    def build(mode):
        return models.resnet(depth, num_classes=classes, input_shape=(size, size, 3),
                             stem=stem, downsampling=mode)
    return build


def _tiny(mode):
    # One stem conv and one downsampling residual block: the real builders, traced fast.
    inputs = keras.Input((16, 16, 3))
    b = blocks.Builder(mode)
    x = b.conv_bn_relu(inputs, 8, 3, "stem")
    x, _ = blocks.basic_block(b, x, 16, 2, "block")
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name=f"tiny_{mode}")


def _deeplab(size):
    def build(mode):
        upsampling = "lpu" if mode in ("aps", "lps") else "bilinear"
        return models.deeplabv3plus("resnet18", num_classes=21, input_shape=(size, size, 3),
                                    downsampling=mode, upsampling=upsampling)
    return build


# Benchmark mode -> (downsampling, upsampling, antialias) of the U-Net: the baseline
# (2x2 max-pool, stride 2; transposed conv up) fills the `strided` row all ratios use; LPF
# blurs (BlurPool after a dense max-pool, lowpass3 after each transposed conv); APS and LPS
# U-Nets upsample with their own selections (APS-U / LPU), without blur (the APS-U code's
# default filter_size=1).
UNET_VARIANTS = {
    "strided": ("maxpool", "transposed", None),
    "blurpool": ("blurpool", "transposed", "lowpass3"),
    "aps": ("aps", "polyphase", None),
    "lps": ("lps", "polyphase", None),
}
# Half the official U-Net widths (64, ..., 1024), still 4 levels: with the official widths
# one training step at 128x128, batch 4 took 3.4 s (graph) to 4.8 s (XLA) for the baseline
# and up to 5.6 s for LPS on 2 CPU cores, so one mode under one compiler (XLA compilation
# plus warmup and repeats) took well over a minute; half widths take about a quarter of the
# arithmetic (0.7-1.1 s per step). A 2-level U-Net serves the test of the command.
UNET_CHANNELS = (32, 64, 128, 256, 512)
UNET_TINY_CHANNELS = (4, 8, 16)


def _unet(size, channels):
    def build(mode):
        downsampling, upsampling, antialias = UNET_VARIANTS[mode]
        return models.unet((size, size, 1), out_channels=1, channels=channels,
                           downsampling=downsampling, upsampling=upsampling,
                           antialias=antialias, name=f"unet_{mode}")
    return build


# name -> (builder(mode), input size, batch, task). LPS uses the library's default widths.
# The task picks the training loss and the fake labels (`TASK_LOSSES`, `_batch`).
MODELS = {
    "resnet18_cifar": (_resnet(18, "cifar", 32, 10), 32, 32, "classification"),
    "resnet20_cifar": (_resnet(20, "cifar", 32, 10), 32, 64, "classification"),
    "resnet50_imagenet": (_resnet(50, "imagenet", 224, 1000), 224, 4, "classification"),
    "deeplabv3plus_resnet18": (_deeplab(256), 256, 4, "segmentation"),
    # Image-to-image regression (MRI reconstruction): one-channel images in and out.
    "unet4": (_unet(128, UNET_CHANNELS), 128, 4, "regression"),
    # Small enough for the test of the benchmark command itself.
    "tiny": (_tiny, 16, 2, "classification"),
    "unet_tiny": (_unet(16, UNET_TINY_CHANNELS), 16, 2, "regression"),
}

# task -> the loss of the timed training step.
TASK_LOSSES = {
    "classification": lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    "segmentation": lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    "regression": lambda: keras.losses.MeanSquaredError(),
}


def _batch(in_shape, out_shape, batch, task, rng):
    """Random inputs of shape `in_shape` (without the batch) and random targets for `task`
    and the model's `out_shape`: class ids (per image or per pixel) or, for regression, an
    image of the output's shape."""
    images = tf.constant(rng.standard_normal((batch, *in_shape), dtype=np.float32))
    if task == "regression":
        return images, tf.constant(rng.standard_normal((batch, *out_shape), dtype=np.float32))
    labels = rng.integers(0, out_shape[-1], size=(batch, *out_shape[:-1]))
    return images, tf.constant(labels, dtype=tf.int32)


def _functions(model, jit_compile, task):
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    loss_fn = TASK_LOSSES[task]()

    @tf.function(jit_compile=jit_compile)
    def infer(images, labels):
        return model(images, training=False)

    @tf.function(jit_compile=jit_compile)
    def train(images, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    return infer, train


def run_model_cases(names, modes, compilers, warmup, repeats, log, on_record=None):
    """Times training and inference of every (model, mode, compiler); one record each.

    All modes of one model under one compiler are timed in interleaved rounds (see
    `interleaved_median_seconds`), so their ratios to `strided` compare like with like.
    """
    rng = np.random.default_rng(0)
    records = []
    for name in names:
        build, size, batch, task = MODELS[name]
        keras.backend.clear_session()
        gc.collect()
        built, build_errors = {}, {}
        for mode in modes:
            try:
                model = build(mode)
                built[mode] = (model, count_macs(model, model.input_shape[1:])[0])
            except Exception as e:
                build_errors[mode] = e
        # Every mode of a model has the same input and output shapes: one batch for all.
        model = next(iter(built.values()))[0] if built else None
        data = (_batch(model.input_shape[1:], model.output_shape[1:], batch, task, rng)
                if built else None)
        for compiler in compilers:
            steps = {mode: _functions(model, compiler == "xla", task)
                     for mode, (model, _) in built.items()}
            cases = {(mode, kind): (fn, data) for mode, (infer, train) in steps.items()
                     for kind, fn in (("train", train), ("infer", infer))}
            seconds, errors = interleaved_median_seconds(cases, warmup, repeats)
            for mode in modes:
                record = {"model": name, "mode": mode, "compiler": compiler, "batch": batch,
                          "input_size": size}
                if mode in built:
                    record.update(params=built[mode][0].count_params(), macs=built[mode][1])

                measure = functools.partial(
                    _measure, mode=mode, build_errors=build_errors,
                    seconds=seconds, errors=errors, steps=steps, batch=batch, data=data)
                record_case(record, measure, _describe, log, records, on_record)
        built.clear()  # free the models before the next network is built
    _add_ratios(records)
    return records


def _measure(r, mode, build_errors, seconds, errors, steps, batch, data):
    """Fills one record from the interleaved timings (or raises the case's error)."""
    if mode in build_errors:
        raise build_errors[mode]
    for kind in ("train", "infer"):
        if (mode, kind) in errors:
            raise errors[(mode, kind)]
        r[f"{kind}_seconds"] = seconds[(mode, kind)]
        r[f"{kind}_images_per_s"] = batch / seconds[(mode, kind)]
    # Peak memory of one training step, measured after the timed steps.
    r["train_peak_mib"] = peak_memory_mib(steps[mode][1], data)


def _describe(r):
    what = f"{r['model']:<24} {r['mode']:<9} {r['compiler']:<5}"
    if "error" in r:
        return f"{what} ERROR {r['error']}"
    return (f"{what} train {r['train_images_per_s']:8.1f} img/s  infer "
            f"{r['infer_images_per_s']:8.1f} img/s  {r['macs'] / 1e6:9.1f} MMAC/img")


def _add_ratios(records):
    """Time and MAC ratios to the `strided` model under the same compiler, and their quotient
    (1.0: the mode costs exactly what its extra arithmetic predicts)."""
    base = {(r["model"], r["compiler"]): r for r in records if r["mode"] == "strided"}
    for r in records:
        b = base.get((r["model"], r["compiler"]))
        if b is None or "macs" not in r or "macs" not in b:
            continue  # the baseline or this mode did not build
        r["mac_ratio"] = r["macs"] / b["macs"]
        for kind in ("train", "infer"):
            if f"{kind}_seconds" in r and f"{kind}_seconds" in b:
                ratio = r[f"{kind}_seconds"] / b[f"{kind}_seconds"]
                r[f"{kind}_time_ratio"] = ratio
                r[f"{kind}_overhead"] = ratio / r["mac_ratio"]
