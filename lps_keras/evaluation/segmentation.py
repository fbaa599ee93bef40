"""Segmentation protocols: mASSC and mean IoU (re-exported by `lps_keras.metrics`).

`SegmentationMeanIoU` keeps its Keras registration (`lps_keras>SegmentationMeanIoU`), so
saved models that hold it still load.

Example:

>>> mean_iou(confusion_matrix(np.array([0, 1]), np.array([0, 1]), 2))
100.0
"""

import keras
import numpy as np

from lps_keras.checks import check_choice, check_int
from lps_keras.evaluation.predict import _class_ids, _iter_batches, _predict_fn
from lps_keras.evaluation.shifts import MODES, _check_seed, segmentation_shifts, shift_images


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
