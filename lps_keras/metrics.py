"""Evaluation protocols for shift invariance and segmentation (docs/design.md, section 5).

Every function returns a percentage and draws its shifts from a seeded generator, per
image: image `i` always gets the same shifts for a given `seed`, whatever the batch size
or the way the data is split into batches (the original code drew one shift per batch).

Models: pass a Keras model (called through `predict_on_batch`, i.e. in inference mode), a
Keras layer (called with `training=False`), or any callable that maps a float32 NHWC numpy
batch to logits (called with `training=False` when its signature accepts it). Outputs of
shape `[B, K]` (classification) or `[B, H, W, K]` (segmentation) are turned into classes
with an argmax; outputs of shape `[B]` or `[B, H, W]` are taken as class ids already.

Data: a numpy array (or anything `np.asarray` accepts) of images `[N, H, W, C]`, batched
internally with `batch_size`; or an iterable of batches (e.g. a `tf.data.Dataset`) that
yields `images` or `(images, labels_or_masks, ...)` tuples, used as batched.

Streaming mIoU inside `fit`/`evaluate`: `SegmentationMeanIoU(num_classes, ignore_label=255)`
accepts logits or class ids and skips ignore pixels, e.g.
`model.compile(..., metrics=[SegmentationMeanIoU(21)])`.

Example:

>>> import keras
>>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(),
...                           keras.layers.Dense(4)])
>>> images = np.random.default_rng(0).normal(size=(16, 8, 8, 3)).astype("float32")
>>> shift_consistency(model, images, mode="circular", seed=0)
100.0
"""

import inspect

import keras
import numpy as np

from lps_keras.checks import check_choice, check_int

MODES = ("circular", "standard")
PROTOCOLS = ("cifar", "imagenet")
DIRECTIONS = ("random", "diagonal")
DEFAULT_MAX_SHIFT = {"cifar": 3, "imagenet": 32}

# Per-image draws come from generators seeded with (seed, stream, block): image `i` reads
# row `i % _BLOCK` of block `i // _BLOCK`, so its draw never depends on batching.
_BLOCK = 1024
_STREAM_PAIRS = 0
_STREAM_SEGMENTATION = 1
_STREAM_RING = 2  # + shift size

__all__ = [
    "SegmentationMeanIoU",
    "accuracy",
    "confusion_matrix",
    "consistency_shifts",
    "consistency_vs_shift",
    "mean_iou",
    "per_class_iou",
    "segmentation_shift_consistency",
    "segmentation_shifts",
    "shift_consistency",
    "shift_images",
]


# ---------------------------------------------------------------------------------------
# Argument checks


def _check_seed(seed):
    return check_int("seed", seed, 0)


def _resolve_max_shift(max_shift, protocol):
    if max_shift is None:
        return DEFAULT_MAX_SHIFT[protocol]
    return check_int("max_shift", max_shift, 1 if protocol == "imagenet" else 0)


# ---------------------------------------------------------------------------------------
# Seeded per-image draws


def _per_image_integers(seed, stream, start, count, low, high, shape):
    """Integers in `[low, high)` of `shape` for images `start .. start + count - 1`."""
    out = np.empty((count,) + tuple(shape), dtype=np.int64)
    done = 0
    while done < count:
        index = start + done
        block, offset = divmod(index, _BLOCK)
        take = min(_BLOCK - offset, count - done)
        rng = np.random.default_rng([seed, stream, block])
        values = rng.integers(low, high, size=(_BLOCK,) + tuple(shape), dtype=np.int64)
        out[done:done + take] = values[offset:offset + take]
        done += take
    return out


def consistency_shifts(num_images, *, mode="circular", protocol="cifar", max_shift=None,
                       seed=0, start=0):
    """The two shifts per image that `shift_consistency` uses, as an int array `[N, 2, 2]`.

    Row `[i, k]` is `(dy, dx)` for draw `k` of image `start + i`:

    - `protocol="cifar"` (both modes): shifts in `[-max_shift, max_shift]` (default 3).
    - `protocol="imagenet"`, `mode="circular"`: roll amounts in `[-max_shift, max_shift - 1]`
      (default 32, i.e. `[-32, 31]`).
    - `protocol="imagenet"`, `mode="standard"`: top-left crop offsets in
      `[0, max_shift - 1]` (default `[0, 31]`).

    Args:
        num_images: number of images.
        mode: `"circular"` or `"standard"`.
        protocol: `"cifar"` or `"imagenet"`.
        max_shift: shift range; None uses the protocol default (3 or 32).
        seed: non-negative int.
        start: index of the first image (draws depend only on `seed` and the image index).

    Example:

    >>> consistency_shifts(4, seed=0).shape
    (4, 2, 2)
    """
    check_choice("mode", mode, MODES)
    check_choice("protocol", protocol, PROTOCOLS)
    max_shift = _resolve_max_shift(max_shift, protocol)
    num_images = check_int("num_images", num_images, 0)
    seed = _check_seed(seed)
    if protocol == "cifar":
        low, high = -max_shift, max_shift + 1
    elif mode == "circular":
        low, high = -max_shift, max_shift
    else:
        low, high = 0, max_shift
    return _per_image_integers(seed, _STREAM_PAIRS, check_int("start", start, 0),
                               num_images, low, high, (2, 2))


def segmentation_shifts(num_images, *, num_shifts=5, max_shift=32, seed=0, start=0):
    """The shifts `segmentation_shift_consistency` uses: int array `[N, num_shifts, 2]`.

    Each `(dy, dx)` is uniform in `[-max_shift, max_shift]^2`, drawn per image.

    Example:

    >>> segmentation_shifts(3, num_shifts=5, seed=0).shape
    (3, 5, 2)
    """
    num_shifts = check_int("num_shifts", num_shifts, 1)
    max_shift = check_int("max_shift", max_shift, 0)
    return _per_image_integers(_check_seed(seed), _STREAM_SEGMENTATION,
                               check_int("start", start, 0),
                               check_int("num_images", num_images, 0),
                               -max_shift, max_shift + 1, (num_shifts, 2))


def _ring_offsets(size):
    """All `(dy, dx)` with `max(|dy|, |dx|) == size`, in a fixed order."""
    if size == 0:
        return np.zeros((1, 2), dtype=np.int64)
    r = np.arange(-size, size + 1)
    dy, dx = np.meshgrid(r, r, indexing="ij")
    on_ring = np.maximum(np.abs(dy), np.abs(dx)) == size
    return np.stack([dy[on_ring], dx[on_ring]], axis=-1).astype(np.int64)


# ---------------------------------------------------------------------------------------
# Shifting images


def _per_image_indices(length, shifts):
    """Source index `i - shift` per image, and whether it falls inside `[0, length)`."""
    source = np.arange(length)[None, :] - np.asarray(shifts)[:, None]
    return source, (source >= 0) & (source < length)


def shift_images(images, shifts, mode="circular", fill_value=0):
    """Shifts each image by its own `(dy, dx)`: `out[i, y, x] = images[i, y - dy, x - dx]`.

    Args:
        images: array `[N, H, W, ...]` (images, masks or class maps).
        shifts: int array `[N, 2]` of `(dy, dx)`, positive = down / right.
        mode: `"circular"` wraps around (`np.roll` per image); `"standard"` is a real
            translation: pixels that come from outside the frame are `fill_value`, exactly
            like zero-padding by the shift and cropping back the original size.
        fill_value: value of the uncovered pixels in `"standard"` mode.

    Returns:
        Array of the same shape and dtype as `images`.

    Example:

    >>> x = np.arange(9).reshape(1, 3, 3)
    >>> shift_images(x, [[1, 0]], mode="standard")[0]
    array([[0, 0, 0],
           [0, 1, 2],
           [3, 4, 5]])
    """
    check_choice("mode", mode, MODES)
    images = np.asarray(images)
    shifts = np.asarray(shifts, dtype=np.int64).reshape(-1, 2)
    n, h, w = images.shape[:3]
    if shifts.shape[0] != n:
        raise ValueError(f"Need one (dy, dx) per image: {n} images, {shifts.shape[0]} shifts.")
    rows, row_ok = _per_image_indices(h, shifts[:, 0])
    cols, col_ok = _per_image_indices(w, shifts[:, 1])
    batch = np.arange(n)[:, None, None]
    if mode == "circular":
        return images[batch, (rows % h)[:, :, None], (cols % w)[:, None, :]]
    out = images[batch, np.clip(rows, 0, h - 1)[:, :, None], np.clip(cols, 0, w - 1)[:, None, :]]
    valid = row_ok[:, :, None] & col_ok[:, None, :]
    valid = valid.reshape(valid.shape + (1,) * (images.ndim - 3))
    return np.where(valid, out, np.asarray(fill_value, dtype=images.dtype))


def _crop_images(images, offsets, size):
    """Per-image crops of `size = (h, w)` with top-left corners `offsets` `[N, 2]`."""
    rows = offsets[:, 0:1] + np.arange(size[0])[None, :]
    cols = offsets[:, 1:2] + np.arange(size[1])[None, :]
    batch = np.arange(images.shape[0])[:, None, None]
    return images[batch, rows[:, :, None], cols[:, None, :]]


# ---------------------------------------------------------------------------------------
# Models and data


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


def _percent(numerator, denominator, what):
    if denominator == 0:
        raise ValueError(f"No {what} to evaluate: the input is empty.")
    return float(100.0 * numerator / denominator)


# ---------------------------------------------------------------------------------------
# Classification


def accuracy(model_or_fn, images, labels=None, *, batch_size=64):
    """Top-1 accuracy in percent on the (unshifted) images.

    Args:
        model_or_fn: Keras model or callable `float32 NHWC batch -> logits [B, K]`.
        images: array `[N, H, W, C]`, or an iterable of `(images, labels)` batches.
        labels: int class ids `[N]` (or one-hot `[N, K]`); leave None for an iterable.
        batch_size: images per model call (arrays only).

    Example:

    >>> fn = lambda x: np.stack([x.mean(axis=(1, 2, 3)), -x.mean(axis=(1, 2, 3))], -1)
    >>> accuracy(fn, np.ones((4, 2, 2, 1)), np.zeros(4, dtype=int))
    100.0
    """
    if _is_array_like(images) and labels is None:
        raise ValueError("`labels` is required when `images` is an array.")
    predict = _predict_fn(model_or_fn)
    correct = total = 0
    for x, y in _iter_batches(images, labels, batch_size, "labels"):
        if y is None:
            raise ValueError("The dataset must yield `(images, labels)` batches for accuracy.")
        y = np.asarray(y)
        if y.ndim == 2:
            y = np.argmax(y, axis=-1)  # one-hot labels
        pred = _class_ids(predict(x), 1, "Classifier")
        correct += int(np.sum(pred == y.reshape(-1)))
        total += len(x)
    return _percent(correct, total, "images")


def _apply_pair_shift(x, shifts, mode, protocol, max_shift):
    if protocol == "cifar":
        return shift_images(x, shifts, mode)
    if mode == "circular":
        return shift_images(x, shifts, "circular")
    h, w = x.shape[1:3]
    return _crop_images(x, shifts, (h - max_shift, w - max_shift))


def shift_consistency(model_or_fn, images, *, mode="circular", max_shift=None, seed=0,
                      batch_size=64, protocol="cifar"):
    """Share (%) of images whose predicted class is the same under two random shifts.

    For each image, two shifts are drawn (see `consistency_shifts`, which returns exactly
    the shifts used) and the model classifies both shifted copies; the result is the
    percentage of images whose two argmax classes agree.

    - `protocol="cifar"`: shifts `(dy, dx)` uniform in `[-max_shift, max_shift]^2`
      (default 3). `mode="circular"` rolls the image; `mode="standard"` zero-pads by the
      shift range and crops back the original size at the shifted offset, i.e. a real
      translation with zero fill (in whatever space `images` are: pass them normalised the
      way the model expects).
    - `protocol="imagenet"` (pass the 256x256 centre crops): `mode="circular"` rolls the
      given image by shifts in `[-max_shift, max_shift - 1]` (default `[-32, 31]`), the
      model seeing the full image; `mode="standard"` takes two `(H - max_shift) x
      (W - max_shift)` crops (224x224 for 256 and 32) at offsets in `[0, max_shift - 1]^2`.

    Args:
        model_or_fn: Keras model or callable `float32 NHWC batch -> logits [B, K]`.
        images: array `[N, H, W, C]` or an iterable of image batches.
        mode: `"circular"` or `"standard"`.
        max_shift: shift range; None uses the protocol default (3 for cifar, 32 for
            imagenet).
        seed: non-negative int; the shifts of image `i` depend only on `seed` and `i`.
        batch_size: images per model call (arrays only); does not change the result.
        protocol: `"cifar"` or `"imagenet"`.

    Returns:
        Consistency in percent (float).

    Example:

    >>> fn = lambda x: x.mean(axis=(1, 2))  # position-blind: exactly invariant
    >>> x = np.random.default_rng(0).normal(size=(8, 6, 6, 3)).astype("float32")
    >>> shift_consistency(fn, x, mode="circular")
    100.0
    """
    check_choice("mode", mode, MODES)
    check_choice("protocol", protocol, PROTOCOLS)
    max_shift = _resolve_max_shift(max_shift, protocol)
    seed = _check_seed(seed)
    predict = _predict_fn(model_or_fn)
    agree = total = 0
    for x, _ in _iter_batches(images, None, batch_size, "labels"):
        if protocol == "imagenet" and min(x.shape[1:3]) <= max_shift:
            raise ValueError(
                f"The ImageNet protocol needs images larger than max_shift={max_shift} "
                f"(e.g. 256x256 centre crops); got {x.shape[1]}x{x.shape[2]}."
            )
        shifts = consistency_shifts(len(x), mode=mode, protocol=protocol,
                                    max_shift=max_shift, seed=seed, start=total)
        first = _class_ids(predict(_apply_pair_shift(x, shifts[:, 0], mode, protocol,
                                                     max_shift)), 1, "Classifier")
        second = _class_ids(predict(_apply_pair_shift(x, shifts[:, 1], mode, protocol,
                                                      max_shift)), 1, "Classifier")
        agree += int(np.sum(first == second))
        total += len(x)
    return _percent(agree, total, "images")


def consistency_vs_shift(model_or_fn, images, shifts=None, *, max_shift=3, mode="circular",
                         direction="random", seed=0, batch_size=64):
    """Agreement (%) between the prediction on each image and on a copy shifted by `s`.

    For plotting consistency against shift size. For each size `s` in `shifts`, each image
    is shifted by an offset of size `s` (Chebyshev norm, `max(|dy|, |dx|) == s`):

    - `direction="random"` (default): per image, uniform over the `8 * s` offsets with
      `max(|dy|, |dx|) == s` (seeded), so the sizes 0..3 together cover the CIFAR square.
    - `direction="diagonal"`: always `(s, s)`.

    Args:
        model_or_fn: Keras model or callable `float32 NHWC batch -> logits [B, K]`.
        images: array `[N, H, W, C]` or an iterable of image batches.
        shifts: iterable of non-negative ints; None means `range(0, max_shift + 1)`.
        max_shift: used only when `shifts` is None.
        mode: `"circular"` (roll) or `"standard"` (zero-filled translation).
        direction: `"random"` or `"diagonal"`.
        seed: non-negative int.
        batch_size: images per model call (arrays only).

    Returns:
        Dict `{s: percent}` in the order of `shifts` (`s = 0` gives 100 for any
        deterministic model).

    Example:

    >>> fn = lambda x: x.mean(axis=(1, 2))
    >>> x = np.random.default_rng(0).normal(size=(4, 6, 6, 3)).astype("float32")
    >>> consistency_vs_shift(fn, x, max_shift=2)
    {0: 100.0, 1: 100.0, 2: 100.0}
    """
    check_choice("mode", mode, MODES)
    check_choice("direction", direction, DIRECTIONS)
    seed = _check_seed(seed)
    if shifts is None:
        shifts = range(0, check_int("max_shift", max_shift, 0) + 1)
    sizes = [check_int("shift size", s, 0) for s in shifts]
    if not sizes:
        raise ValueError("`shifts` is empty; pass shift sizes such as `range(0, 4)`.")
    predict = _predict_fn(model_or_fn)
    agree = dict.fromkeys(sizes, 0)
    total = 0
    for x, _ in _iter_batches(images, None, batch_size, "labels"):
        base = _class_ids(predict(x), 1, "Classifier")
        for s in dict.fromkeys(sizes):
            if direction == "diagonal":
                offsets = np.full((len(x), 2), s, dtype=np.int64)
            else:
                ring = _ring_offsets(s)
                pick = _per_image_integers(seed, _STREAM_RING + s, total, len(x), 0,
                                           len(ring), ())
                offsets = ring[pick]
            shifted = _class_ids(predict(shift_images(x, offsets, mode)), 1, "Classifier")
            agree[s] += int(np.sum(shifted == base))
        total += len(x)
    return {s: _percent(agree[s], total, "images") for s in sizes}


# ---------------------------------------------------------------------------------------
# Segmentation


def _squeeze_masks(masks):
    masks = np.asarray(masks)
    if masks.ndim == 4 and masks.shape[-1] == 1:
        masks = masks[..., 0]
    if masks.ndim != 3:
        raise ValueError(f"Masks must have shape [N, H, W] or [N, H, W, 1]; got {masks.shape}.")
    return masks


def segmentation_shift_consistency(model_or_fn, images, masks=None, *, mode="circular",
                                   num_shifts=5, max_shift=32, ignore_label=255, seed=0,
                                   batch_size=8):
    """mASSC: mean share (%) of pixels whose class survives a shift of the input.

    Per image, `num_shifts` shifts `(dy, dx)` uniform in `[-max_shift, max_shift]^2` are
    drawn (see `segmentation_shifts`). For each, the model segments the shifted image and
    the prediction is compared pixel by pixel with the prediction on the unshifted image:

    - `mode="circular"`: the image is rolled; the prediction is rolled back, all pixels
      compared.
    - `mode="standard"`: the image is translated with zero fill; only the pixels inside
      both frames (the overlapping window) are compared.

    Pixels whose label in `masks` equals `ignore_label` are left out. The result is the
    mean, over all (image, shift) pairs, of the agreeing share of compared pixels (pairs
    with no pixel to compare are skipped).

    Args:
        model_or_fn: Keras model or callable `float32 NHWC batch -> logits [B, H, W, K]`
            at the input resolution.
        images: array `[N, H, W, C]`, or an iterable of `images` or `(images, masks)`
            batches.
        masks: optional int labels `[N, H, W]` (or `[N, H, W, 1]`), used only to find
            ignore pixels.
        mode: `"circular"` or `"standard"`.
        num_shifts: shifts per image.
        max_shift: shift range.
        ignore_label: label of pixels to leave out.
        seed: non-negative int.
        batch_size: images per model call (arrays only).

    Returns:
        mASSC in percent (float).

    Example:

    >>> fn = lambda x: x  # per-pixel "logits": exactly equivariant
    >>> x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    >>> segmentation_shift_consistency(fn, x, max_shift=4)
    100.0
    """
    check_choice("mode", mode, MODES)
    num_shifts = check_int("num_shifts", num_shifts, 1)
    max_shift = check_int("max_shift", max_shift, 0)
    seed = _check_seed(seed)
    predict = _predict_fn(model_or_fn)
    ratios = []
    index = 0
    for x, y in _iter_batches(images, masks, batch_size, "masks"):
        n, h, w = x.shape[:3]
        keep = np.ones((n, h, w), dtype=bool) if y is None else _squeeze_masks(y) != ignore_label
        base = _class_ids(predict(x), 3, "Segmentation")
        if base.shape != (n, h, w):
            raise ValueError(
                f"The segmentation model must predict at the input resolution: input "
                f"{(n, h, w)}, prediction {base.shape}. Upsample the logits to the input size."
            )
        shifts = segmentation_shifts(n, num_shifts=num_shifts, max_shift=max_shift,
                                     seed=seed, start=index)
        for k in range(num_shifts):
            shift = shifts[:, k]
            shifted = _class_ids(predict(shift_images(x, shift, mode)), 3, "Segmentation")
            # Bring the prediction back to the frame of the unshifted image.
            back = shift_images(shifted, -shift, mode)
            valid = keep
            if mode == "standard":
                inside = shift_images(np.ones((n, h, w), dtype=bool), -shift, "standard",
                                      fill_value=False)
                # `inside` marks pixels whose shifted position is still in the frame.
                valid = keep & inside
            same = (back == base) & valid
            counts = valid.reshape(n, -1).sum(axis=1)
            hits = same.reshape(n, -1).sum(axis=1)
            ratios.extend((hits[counts > 0] / counts[counts > 0]).tolist())
        index += n
    if index == 0:
        raise ValueError("No images to evaluate: the input is empty.")
    if not ratios:
        raise ValueError("Every pixel is ignored (or outside the overlap): nothing to compare.")
    return float(100.0 * np.mean(ratios))


def confusion_matrix(labels, preds, num_classes, ignore_label=255):
    """Confusion matrix `[num_classes, num_classes]` (int64) over non-ignored pixels.

    Row = true class, column = predicted class.

    Args:
        labels: int class ids of any shape; pixels equal to `ignore_label` are left out.
        preds: class ids with the shape of `labels`, or scores with one more trailing axis
            (an argmax is taken).
        num_classes: number of classes `K`.
        ignore_label: label to leave out (None: none).

    Example:

    >>> confusion_matrix(np.array([0, 1, 255]), np.array([0, 0, 1]), 2)
    array([[1, 0],
           [1, 0]])
    """
    num_classes = check_int("num_classes", num_classes, 1)
    labels = np.asarray(keras.ops.convert_to_numpy(labels))
    preds = np.asarray(keras.ops.convert_to_numpy(preds))
    if (num_classes > 1 and labels.ndim == preds.ndim and labels.shape[-1:] == (1,)
            and preds.shape[-1] == num_classes):
        labels = labels[..., 0]  # [..., 1] labels next to [..., K] scores
    if preds.ndim == labels.ndim + 1:
        preds = np.argmax(preds, axis=-1)
    if preds.shape != labels.shape:
        raise ValueError(
            f"`preds` {preds.shape} must have the shape of `labels` {labels.shape} (or one "
            "more trailing axis of class scores)."
        )
    labels = labels.reshape(-1).astype(np.int64)
    preds = preds.reshape(-1).astype(np.int64)
    if ignore_label is not None:
        keep = labels != ignore_label
        labels, preds = labels[keep], preds[keep]
    for name, values in (("labels", labels), ("preds", preds)):
        bad = (values < 0) | (values >= num_classes)
        if np.any(bad):
            raise ValueError(
                f"`{name}` holds class ids outside [0, {num_classes}) (e.g. "
                f"{int(values[bad][0])}) that are not the ignore label {ignore_label}."
            )
    counts = np.bincount(labels * num_classes + preds, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def per_class_iou(confusion):
    """IoU per class in percent; NaN for classes absent from both labels and predictions.

    Example:

    >>> per_class_iou(np.array([[2, 1], [0, 0]]))
    array([66.66666667,  0.        ])
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"`confusion` must be a square matrix; got shape {confusion.shape}.")
    hits = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - hits
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, 100.0 * hits / union, np.nan)


def mean_iou(confusion):
    """Mean IoU (%) over classes present in the labels or the predictions.

    Classes absent from both (an all-zero row and column) are left out of the mean; NaN
    if no class is present.

    Example:

    >>> round(mean_iou(np.array([[2, 1, 0], [0, 0, 0], [0, 0, 0]])), 2)  # class 2 absent
    33.33
    """
    ious = per_class_iou(confusion)
    present = ~np.isnan(ious)
    if not np.any(present):
        return float("nan")
    return float(np.mean(ious[present]))


@keras.saving.register_keras_serializable(package="lps_keras")
class SegmentationMeanIoU(keras.metrics.Metric):
    """Streaming mean IoU for segmentation that skips ignore pixels.

    Accumulates a confusion matrix over batches; `result()` is the mean IoU over classes
    present in the labels or predictions so far, as a fraction in [0, 1] like
    `keras.metrics.MeanIoU` (multiply by 100 to compare with `mean_iou`).

    Args:
        num_classes: number of classes `K`.
        ignore_label: label of pixels to leave out (also any label outside `[0, K)`).
        name: metric name.
        dtype: dtype of the result.

    `update_state(y_true, y_pred, sample_weight=None)`: `y_true` int labels `[B, H, W]` or
    `[B, H, W, 1]`; `y_pred` logits `[B, H, W, K]` (argmax taken) or class ids with the
    shape of `y_true`.

    Example:

    >>> m = SegmentationMeanIoU(num_classes=2)
    >>> m.update_state(np.array([[0, 1, 255]]), np.array([[0, 0, 1]]))
    >>> float(m.result())  # class 0: 1/2, class 1: 0/1
    0.25
    """

    def __init__(self, num_classes, ignore_label=255, name="mean_iou", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = check_int("num_classes", num_classes, 1)
        if ignore_label is not None:
            ignore_label = check_int("ignore_label", ignore_label, -(2**31))
        self.ignore_label = ignore_label
        # float64: float32 counts stop being exact past 2**24 pixels (64 VOC images).
        self.total_confusion = self.add_variable(
            shape=(self.num_classes, self.num_classes),
            initializer="zeros",
            dtype="float64",
            aggregation="sum",
            name="total_confusion",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        ops = keras.ops
        k = self.num_classes
        y_true = ops.convert_to_tensor(y_true)
        y_pred = ops.convert_to_tensor(y_pred)
        if len(y_true.shape) >= 2 and y_true.shape[-1] == 1 and (
                len(y_pred.shape) == len(y_true.shape) or y_pred.shape[-1] == k):
            y_true = ops.squeeze(y_true, axis=-1)
        if len(y_pred.shape) == len(y_true.shape) + 1:
            if y_pred.shape[-1] == 1:
                y_pred = ops.squeeze(y_pred, axis=-1)
            else:
                y_pred = ops.argmax(y_pred, axis=-1)
        if len(y_pred.shape) != len(y_true.shape):
            raise ValueError(
                f"SegmentationMeanIoU: `y_pred` {tuple(y_pred.shape)} must be logits "
                f"[..., {k}] or class ids shaped like `y_true` {tuple(y_true.shape)}."
            )
        weights = None
        if sample_weight is not None:
            # Per-image (or per-pixel) weights, broadcast over the pixels.
            weights = ops.cast(ops.convert_to_tensor(sample_weight), "float32")
            while len(weights.shape) < len(y_true.shape):
                weights = ops.expand_dims(weights, -1)
            weights = ops.reshape(ops.broadcast_to(weights, ops.shape(y_true)), (-1,))
        y_true = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        y_pred = ops.reshape(ops.cast(y_pred, "int32"), (-1,))
        valid = ops.logical_and(y_true >= 0, y_true < k)
        if self.ignore_label is not None:
            valid = ops.logical_and(valid, y_true != self.ignore_label)
        weights = ops.cast(valid, "float32") if weights is None else (
            weights * ops.cast(valid, "float32"))
        # Out-of-range predictions would address another cell; clip them into the matrix.
        y_pred = ops.clip(y_pred, 0, k - 1)
        index = ops.where(valid, y_true * k + y_pred, ops.zeros_like(y_true))
        counts = ops.segment_sum(weights, index, num_segments=k * k)
        self.total_confusion.assign_add(
            ops.reshape(ops.cast(counts, "float64"), (k, k)))

    def result(self):
        ops = keras.ops
        confusion = self.total_confusion
        hits = ops.diagonal(confusion)
        union = ops.sum(confusion, axis=0) + ops.sum(confusion, axis=1) - hits
        present = union > 0
        iou = ops.where(present, hits / ops.where(present, union, ops.ones_like(union)), 0.0)
        num_present = ops.sum(ops.cast(present, "float64"))
        value = ops.sum(iou) / ops.maximum(num_present, 1.0)
        return ops.cast(value, self.dtype)

    def reset_state(self):
        self.total_confusion.assign(
            keras.ops.zeros((self.num_classes, self.num_classes), dtype="float64"))

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "ignore_label": self.ignore_label})
        return config
