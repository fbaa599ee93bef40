"""Test helpers shared across the suite (imported as `tests.helpers`)."""

import json
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def batch_norm_tolerance():
    """`assert_allclose` tolerances for float64 layers that contain a Keras
    BatchNormalization: Keras (3.15) normalises in `result_type(dtype, "float32")`, which
    off TensorFlow maps float64 to float32, so such a layer is float64-exact only on
    TensorFlow and float32-precise elsewhere (JAX)."""
    if keras.backend.result_type("float64", "float32") == "float64":
        return {"rtol": 1e-10, "atol": 1e-12}
    return {"rtol": 1e-4, "atol": 1e-5}


def compiled(fn):
    """`fn` compiled with XLA on the current backend (`tf.function(jit_compile=True)` on
    TensorFlow, `jax.jit` on JAX)."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn)
    xla = tf.function(fn, jit_compile=True)
    return lambda *args: xla(*(tf.constant(a) if isinstance(a, np.ndarray) else a
                               for a in args))


def gradients(loss_fn, variables):
    """Gradients of `loss_fn()` (a scalar) with respect to Keras `variables`, on the
    current backend (TensorFlow's GradientTape, or `jax.grad` through a StatelessScope)."""
    variables = list(variables)
    if keras.backend.backend() == "jax":
        import jax

        def loss_of(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
                return loss_fn()

        return jax.grad(loss_of)([v.value for v in variables])
    with tf.GradientTape() as tape:
        loss = loss_fn()
    return tape.gradient(loss, variables)


def _outputs(result):
    return result if isinstance(result, (tuple, list)) else (result,)


def assert_all_close(actual, expected, atol=1e-5, rtol=1e-5):
    for a, e in zip(_outputs(actual), _outputs(expected), strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(e), atol=atol, rtol=rtol)


def run_layer_test(layer_cls, init_kwargs, input_shape, expected_output_shapes,
                   tmp_path, call_kwargs=None, train=True, atol=1e-6):
    """Checks one layer the way a user will use it.

    - config round trip gives an equal config and equal outputs (same weights);
    - symbolic call in a functional model gives the expected shapes, eager matches it;
    - `.keras` save/load reproduces the outputs;
    - a compiled call (XLA: `tf.function(jit_compile=True)` on TensorFlow, `jax.jit` on
      JAX) matches eager;
    - one training step with `fit` runs and leaves finite weights.
    """
    call_kwargs = dict(call_kwargs or {})
    x = np.random.default_rng(7).normal(size=input_shape).astype("float32")

    layer = layer_cls(**init_kwargs)
    eager = layer(x, training=False, **call_kwargs)
    got_shapes = [tuple(t.shape) for t in _outputs(eager)]
    assert got_shapes == [tuple(s) for s in expected_output_shapes]

    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    clone(x, training=False, **call_kwargs)
    clone.set_weights(layer.get_weights())
    assert_all_close(clone(x, training=False, **call_kwargs), eager, atol=atol)

    # Functional model with unknown batch size.
    inputs = keras.Input(input_shape[1:])
    symbolic = layer(inputs, **call_kwargs)
    for t, shape in zip(_outputs(symbolic), expected_output_shapes, strict=True):
        assert tuple(t.shape)[1:] == tuple(shape)[1:]
    model = keras.Model(inputs, symbolic)
    assert_all_close(model(x, training=False), eager, atol=atol)

    path = str(tmp_path / f"{layer.name}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert_all_close(reloaded(x, training=False), eager, atol=atol)

    assert_all_close(compiled(lambda v: model(v, training=False))(x), eager, atol=1e-5)

    if train:
        head = keras.layers.GlobalAveragePooling2D()(_outputs(symbolic)[0])
        head = keras.layers.Dense(2)(head)
        trainer = keras.Model(inputs, head)
        trainer.compile(optimizer="sgd", loss="mse")
        history = trainer.fit(x, np.zeros((input_shape[0], 2), "float32"), epochs=1,
                              batch_size=input_shape[0], verbose=0)
        assert np.isfinite(history.history["loss"][0])
        for w in trainer.weights:
            assert np.all(np.isfinite(to_numpy(w)))
    return layer


SHIFTS = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)]


def roll(x, shift):
    """Circular shift of NHWC numpy `x` by `(dy, dx)`."""
    return np.roll(to_numpy(x), shift, axis=(1, 2))


def low_res_shift(index, shift, stride):
    """Low-resolution roll that the shift law predicts for selected component `index`.

    Component `k = s*i + j` of `x` reappears in `roll(x, (dy, dx))` rolled by
    `(floor((i + dy) / s), floor((j + dx) / s))` on the low-resolution grid.
    """
    i, j = divmod(int(index), stride)
    return ((i + shift[0]) // stride, (j + shift[1]) // stride)


def expected_after_shift(outputs, indices, shift, stride):
    """Per sample: `outputs[b]` rolled by the low-resolution shift of its component."""
    outputs = to_numpy(outputs)
    return np.stack(
        [np.roll(outputs[b], low_res_shift(indices[b], shift, stride), axis=(0, 1))
         for b in range(outputs.shape[0])]
    )


# Loads SavedModels in a new interpreter and calls named signatures. `jobs.json` lists
# {key, dir, signature, input}; outputs go to an .npz as "<key>::<output name>".
SIGNATURE_LOADER = r"""
import json, sys
import numpy as np
import tensorflow as tf

jobs = json.load(open(sys.argv[1]))
report = {"errors": {}, "input_specs": {}}
arrays, loaded = {}, {}
for job in jobs:
    if job["dir"] not in loaded:
        loaded[job["dir"]] = tf.saved_model.load(job["dir"])
    fn = loaded[job["dir"]].signatures[job["signature"]]
    spec = fn.structured_input_signature[1]["images"]
    report["input_specs"][job["key"]] = [spec.dtype.name, spec.shape.as_list()]
    try:
        outputs = fn(images=tf.constant(np.load(job["input"])))
    except tf.errors.InvalidArgumentError as e:
        report["errors"][job["key"]] = e.message
        continue
    for name, value in outputs.items():
        arrays[job["key"] + "::" + name] = value.numpy()
np.savez(sys.argv[2], **arrays)
report["lps_keras_modules"] = sorted(m for m in sys.modules if m.startswith("lps_keras"))
print(json.dumps(report))
"""


_FRESH_LOADER = """
import json, sys
import numpy as np
import tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
outputs = served.serve(tf.constant(x))
outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
np.savez(sys.argv[3], *[o.numpy() for o in outputs])
print(json.dumps({"lps_keras_imported": any(m.startswith("lps_keras") for m in sys.modules)}))
"""


def serve_in_fresh_process(export_dir, x, tmp_path):
    """Loads a `model.export` SavedModel in a new Python that never imports lps_keras.

    Returns the list of outputs of its `serve` endpoint on `x`.
    """
    np.save(tmp_path / "serve_input.npy", x)
    result = subprocess.run(
        [sys.executable, "-c", _FRESH_LOADER, str(export_dir),
         str(tmp_path / "serve_input.npy"), str(tmp_path / "serve_output.npz")],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path), check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"lps_keras_imported": False}
    served = np.load(tmp_path / "serve_output.npz")
    return [served[f"arr_{i}"] for i in range(len(served.files))]


def serve_signatures_in_fresh_process(jobs, tmp_path):
    """Runs `SIGNATURE_LOADER` on `jobs` (dicts `key`, `dir`, `signature`, `images` (a
    numpy array)) in a new Python that never imports lps_keras.

    Returns `(outputs, report)`: a dict from `"<key>::<output name>"` to numpy arrays, and
    the loader's report (`errors`: key to the `InvalidArgumentError` message;
    `input_specs`: key to `[dtype, shape]`).
    """
    listed = []
    for job in jobs:
        path = tmp_path / f"{job['key']}.npy"
        np.save(path, job["images"])
        listed.append({"key": job["key"], "dir": str(job["dir"]),
                       "signature": job["signature"], "input": str(path)})
    with open(tmp_path / "jobs.json", "w") as f:
        json.dump(listed, f)
    result = subprocess.run(
        [sys.executable, "-c", SIGNATURE_LOADER, str(tmp_path / "jobs.json"),
         str(tmp_path / "served.npz")],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path), check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["lps_keras_modules"] == []
    with np.load(tmp_path / "served.npz") as arrays:
        return {k: arrays[k] for k in arrays.files}, report


def calibrate_batchnorm(model, x):
    """Sets every BN's moving statistics to those of `x` (one training-mode pass).

    Random-weight ResNets in inference mode use the initial statistics (mean 0, var 1), so
    activations grow with depth and logits reach 1e3; float32 rounding then swamps an
    absolute tolerance. Calibrated statistics keep logits O(1) and the check meaningful.
    On JAX the pass is jitted (see `inference`).
    """
    norms = [layer for layer in model._flatten_layers()
             if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    if keras.backend.backend() == "jax":
        import jax

        step = jax.jit(lambda t, n, v: model.stateless_call(t, n, v, training=True)[1])
        updated = step([w.value for w in model.trainable_variables],
                       [w.value for w in model.non_trainable_variables], x)
        for variable, value in zip(model.non_trainable_variables, updated, strict=True):
            variable.assign(value)
    else:
        model(x, training=True)
    for layer, momentum in zip(norms, saved, strict=True):
        layer.momentum = momentum


def inference(model):
    """`x -> numpy outputs of model(x, training=False)`: a plain call on TensorFlow, and
    jitted on JAX, the way `fit`/`predict` run a model there. Eager JAX compiles every op
    separately for each new shape, which makes model-level sweeps several times slower;
    eager JAX is covered by the layer tests."""
    if keras.backend.backend() != "jax":
        return lambda x: to_numpy(model(x, training=False))
    import jax

    forward = jax.jit(lambda t, n, v: model.stateless_call(t, n, v, training=False)[0])
    return lambda x: to_numpy(forward([w.value for w in model.trainable_variables],
                                      [w.value for w in model.non_trainable_variables],
                                      x))


def natural_images(num, size, channels, seed):
    """Photo-like float32 images in [0, 1]: half 1/f noise, half smoothed synthetic shapes.

    Natural images have a power spectrum falling off as 1/f^2, so neighbouring pixels, and
    with them the polyphase components, are nearly equal. That is where near-ties between
    component scores, and any dependence on summation order, show up; white noise hides it.
    """
    from lps_keras.data.synthetic import make_synthetic_shapes

    rng = np.random.default_rng(seed)
    n_noise = num - num // 2
    f = np.fft.fftfreq(size)
    radius = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    radius[0, 0] = 1.0
    amplitude = 1.0 / radius
    amplitude[0, 0] = 0.0
    spectrum = (rng.normal(size=(n_noise, size, size, channels))
                + 1j * rng.normal(size=(n_noise, size, size, channels)))
    noise = np.real(np.fft.ifft2(spectrum * amplitude[None, :, :, None], axes=(1, 2)))
    noise = (noise - noise.mean((1, 2, 3), keepdims=True)) / noise.std((1, 2, 3), keepdims=True)
    noise = np.clip(0.5 + 0.2 * noise, 0.0, 1.0)

    shapes = make_synthetic_shapes(num // 2, size, seed=seed)[0].astype(np.float32) / 255.0
    for axis in (1, 2):  # circular binomial blur [1, 4, 6, 4, 1] / 16
        shapes = sum(w * np.roll(shapes, i - 2, axis)
                     for i, w in enumerate((1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)))
    reps = -(-channels // 3)
    shapes = np.concatenate([shapes] * reps, axis=-1)[..., :channels]
    return np.concatenate([noise, shapes]).astype(np.float32)
