"""Models and data for the evaluation protocols: inference-mode prediction and batching.

Shared by `lps_keras.evaluation.classification` and `lps_keras.evaluation.segmentation`.
"""

import inspect

import keras
import numpy as np

from lps_keras.checks import check_int


def _accepts_training(fn):
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "training" or p.kind is p.VAR_KEYWORD for p in params)


def _single_output(outputs):
    if isinstance(outputs, (list, tuple, dict)):
        raise ValueError(
            f"The model returned {type(outputs).__name__} of {len(outputs)} outputs; the "
            "metrics need a single logits tensor. Pass a callable that returns only the "
            "logits, e.g. `lambda x: model(x, training=False)[0]`."
        )
    return np.asarray(keras.ops.convert_to_numpy(outputs))


def _predict_fn(model_or_fn):
    """Wraps a model or callable as `numpy batch -> numpy outputs` in inference mode."""
    if isinstance(model_or_fn, keras.Model):
        return lambda x: _single_output(model_or_fn.predict_on_batch(x))
    if isinstance(model_or_fn, keras.layers.Layer):
        return lambda x: _single_output(model_or_fn(x, training=False))
    if not callable(model_or_fn):
        raise TypeError(
            "`model_or_fn` must be a Keras model or a callable mapping a float32 NHWC batch "
            f"to logits; got {type(model_or_fn).__name__}."
        )
    if _accepts_training(model_or_fn):
        return lambda x: _single_output(model_or_fn(x, training=False))
    return lambda x: _single_output(model_or_fn(x))


def _class_ids(outputs, rank_of_ids, what):
    """Argmax over the last axis of scores; outputs of rank `rank_of_ids` are ids already."""
    if outputs.ndim == rank_of_ids + 1:
        return np.argmax(outputs, axis=-1)
    if outputs.ndim == rank_of_ids:
        return outputs.astype(np.int64)
    expected = "[B, K] (or class ids [B])" if rank_of_ids == 1 else "[B, H, W, K] (or [B, H, W])"
    raise ValueError(f"{what} outputs must have shape {expected}; got {outputs.shape}.")


def _as_images(x):
    x = np.asarray(keras.ops.convert_to_numpy(x) if not isinstance(x, np.ndarray) else x)
    if x.ndim != 4:
        raise ValueError(
            f"Images must be a rank-4 NHWC batch [batch, height, width, channels]; got shape "
            f"{x.shape}. Add a channel axis for grayscale images."
        )
    return x.astype(np.float32, copy=False)


def _is_array_like(data):
    return isinstance(data, np.ndarray) or hasattr(data, "shape") or isinstance(data, list)


def _iter_batches(images, targets, batch_size, target_name):
    """Yields `(images, targets_or_None)` numpy batches from arrays or batched iterables."""
    batch_size = check_int("batch_size", batch_size, 1)
    if _is_array_like(images):
        images = np.asarray(images) if not hasattr(images, "numpy") else images.numpy()
        if images.ndim != 4:
            raise ValueError(
                f"`images` must have shape [N, H, W, C]; got {images.shape}. For a single "
                "image add a batch axis with `images[None]`."
            )
        if targets is not None:
            targets = np.asarray(keras.ops.convert_to_numpy(targets))
            if len(targets) != len(images):
                raise ValueError(
                    f"`{target_name}` has {len(targets)} entries but `images` has "
                    f"{len(images)}; pass one entry per image."
                )
        for start in range(0, len(images), batch_size):
            stop = start + batch_size
            yield (_as_images(images[start:stop]),
                   None if targets is None else targets[start:stop])
        return
    if targets is not None:
        raise ValueError(
            f"`{target_name}` can only be passed separately when `images` is an array; with "
            f"a dataset, yield `(images, {target_name})` batches instead."
        )
    for element in images:
        if isinstance(element, (tuple, list)):
            x = element[0]
            y = element[1] if len(element) > 1 else None
        elif isinstance(element, dict):
            raise ValueError("Dataset elements must be `images` or `(images, targets)` tuples, "
                             "not dicts.")
        else:
            x, y = element, None
        yield _as_images(x), None if y is None else np.asarray(keras.ops.convert_to_numpy(y))
