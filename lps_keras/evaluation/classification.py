"""Classification protocols: accuracy and shift consistency (re-exported by `lps_keras.metrics`).

Example:

>>> fn = lambda x: x.mean(axis=(1, 2))
>>> shift_consistency(fn, np.ones((2, 4, 4, 3), dtype="float32"))
100.0
"""

import numpy as np

from lps_keras.checks import check_choice, check_int
from lps_keras.evaluation.predict import _class_ids, _is_array_like, _iter_batches, _predict_fn
from lps_keras.evaluation.shifts import (
    DIRECTIONS,
    MODES,
    PROTOCOLS,
    _check_seed,
    _crop_images,
    _resolve_max_shift,
    _size_offsets,
    consistency_shifts,
    shift_images,
)


def _percent(numerator, denominator, what):
    if denominator == 0:
        raise ValueError(f"No {what} to evaluate: the input is empty.")
    return float(100.0 * numerator / denominator)


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
            offsets = _size_offsets(s, seed, total, len(x), direction)
            shifted = _class_ids(predict(shift_images(x, offsets, mode)), 1, "Classifier")
            agree[s] += int(np.sum(shifted == base))
        total += len(x)
    return {s: _percent(agree[s], total, "images") for s in sizes}
