"""Layer benchmarks: each downsampler against `x[:, ::2, ::2]`, LPU against UpSampling2D."""

import functools

import keras
import numpy as np
import tensorflow as tf

from benchmarks.timing import interleaved_median_seconds, record_case
from lps_keras.layers import (
    APSDownsampling2D,
    BlurPool2D,
    LPSDownsampling2D,
    PolyphaseUpsampling2D,
)

# (batch, height, width, channels) of the input; stride 2 throughout.
SHAPES = ((64, 32, 32, 64), (16, 56, 56, 256))
TINY_SHAPES = ((2, 8, 8, 16),)
PASSES = ("inference", "forward_backward")


class StridedSlice(keras.layers.Layer):
    """The baseline: keep every second row and column, `x[:, ::2, ::2]`."""

    def call(self, x):
        return x[:, ::2, ::2, :]


class InputSum(keras.layers.Layer):
    """Not a downsampler: one read of every input element (a per-sample sum). Any selection
    that depends on the data (APS, LPS) must read all of `x`, while the slice reads a
    quarter, so this is the floor of what an adaptive downsampler can cost."""

    def call(self, x):
        return keras.ops.sum(x, axis=(1, 2, 3))


# name -> (baseline name, layer factory, needs probs). Factories take the channel count.
LAYERS = {
    "strided_slice": (None, lambda c: StridedSlice(), False),
    "input_sum": ("strided_slice", lambda c: InputSum(), False),
    "blurpool3": ("strided_slice", lambda c: BlurPool2D(3, stride=2), False),
    "aps": ("strided_slice", lambda c: APSDownsampling2D(2), False),
    "lps_conv_full": ("strided_slice", lambda c: LPSDownsampling2D(2, "conv", seed=0), False),
    "lps_conv_16": ("strided_slice",
                    lambda c: LPSDownsampling2D(2, "conv", hidden_channels=16, seed=0), False),
    "lps_perceptron": ("strided_slice",
                       lambda c: LPSDownsampling2D(2, "perceptron", seed=0), False),
    "upsampling2d": (None, lambda c: keras.layers.UpSampling2D(2), False),
    "polyphase_upsampling": ("upsampling2d", lambda c: PolyphaseUpsampling2D(2), True),
}


def _functions(layer, needs_probs, jit_compile):
    """Inference and forward+backward steps of `layer` as `tf.function`s."""
    if needs_probs:
        def forward(x, probs, training):
            return layer(x, probs)
    else:
        def forward(x, probs, training):
            return layer(x, training=training)

    @tf.function(jit_compile=jit_compile)
    def infer(x, probs):
        return forward(x, probs, False)

    @tf.function(jit_compile=jit_compile)
    def forward_backward(x, probs, upstream):
        # A random upstream gradient: with sum(y) the gradient of a linear layer would not
        # depend on x, and XLA would fold the whole backward pass into a constant.
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = forward(x, probs, True)
        grads = tape.gradient(y, [x, *layer.trainable_variables], output_gradients=upstream)
        # Also return a use of y, or XLA drops the forward pass of a linear layer.
        return grads, tf.reduce_sum(y)

    return infer, forward_backward


def run_layer_cases(names, shapes, compilers, warmup, repeats, log, on_record=None):
    """Times every layer at every shape; returns one record per (layer, shape, compiler, pass).

    The layers of one shape and compiler are timed in interleaved rounds (see
    `interleaved_median_seconds`), so each ratio to its baseline compares like with like.
    """
    rng = np.random.default_rng(0)
    records = []
    for shape in shapes:
        x = tf.constant(rng.standard_normal(shape, dtype=np.float32))
        probs = tf.one_hot(rng.integers(0, 4, size=shape[0]), 4)
        for compiler in compilers:
            cases, setup_errors = {}, {}
            for name in names:
                try:
                    cases.update(_cases(name, shape[-1], x, probs, compiler, rng))
                except Exception as e:
                    setup_errors[name] = e
            seconds, errors = interleaved_median_seconds(cases, warmup, repeats)
            for name in names:
                for kind in PASSES:
                    record = {"layer": name, "baseline": LAYERS[name][0], "shape": list(shape),
                              "compiler": compiler, "pass": kind}
                    error = setup_errors.get(name, errors.get((name, kind)))
                    measure = functools.partial(_measure, seconds=seconds.get((name, kind)),
                                                error=error)
                    record_case(record, measure, _describe, log, records, on_record)
    _add_ratios(records, ("shape", "compiler", "pass"), "layer")
    return records


def _cases(name, channels, x, probs, compiler, rng):
    """`{(name, pass): (fn, args)}` for one layer: a fresh layer, traced for `compiler`."""
    _, factory, needs_probs = LAYERS[name]
    layer = factory(channels)
    infer, fwd_bwd = _functions(layer, needs_probs, compiler == "xla")
    out_shape = (layer(x, probs) if needs_probs else layer(x, training=True)).shape
    upstream = tf.constant(rng.standard_normal(out_shape, dtype=np.float32))
    return {(name, "inference"): (infer, (x, probs)),
            (name, "forward_backward"): (fwd_bwd, (x, probs, upstream))}


def _measure(r, seconds, error):
    if error is not None:
        raise error
    r["seconds"] = seconds


def _describe(r):
    shape = "x".join(map(str, r["shape"]))
    what = f"{r['layer']:<22} {shape:<14} {r['compiler']:<5} {r['pass']:<17}"
    return what + (f" ERROR {r['error']}" if "error" in r else f" {r['seconds'] * 1e3:9.2f} ms")


def _add_ratios(records, keys, name_key):
    """Adds `ratio` = seconds / seconds of the record's baseline under the same keys."""
    index = {(r[name_key], *(str(r[k]) for k in keys)): r for r in records}
    for r in records:
        base = index.get((r["baseline"], *(str(r[k]) for k in keys))) if r["baseline"] else None
        if base is not None and "seconds" in r and "seconds" in base:
            r["ratio"] = r["seconds"] / base["seconds"]
