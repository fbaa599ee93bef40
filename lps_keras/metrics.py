"""Evaluation protocols for shift invariance and segmentation (docs/design.md, section 5).

The public face of `lps_keras.evaluation.shifts` (seeded shift draws, `shift_images`),
`lps_keras.evaluation.classification` (`accuracy`, `shift_consistency`,
`consistency_vs_shift`) and `lps_keras.evaluation.segmentation` (mASSC, mean IoU,
`SegmentationMeanIoU`).

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
>>> import numpy as np
>>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(),
...                           keras.layers.Dense(4)])
>>> images = np.random.default_rng(0).normal(size=(16, 8, 8, 3)).astype("float32")
>>> shift_consistency(model, images, mode="circular", seed=0)
100.0
"""

from lps_keras.evaluation.classification import (
    accuracy,
    consistency_vs_shift,
    shift_consistency,
)
from lps_keras.evaluation.segmentation import (
    SegmentationMeanIoU,
    confusion_matrix,
    mean_iou,
    per_class_iou,
    segmentation_shift_consistency,
)
from lps_keras.evaluation.shifts import (  # constants: attributes as before, not in __all__
    DEFAULT_MAX_SHIFT,  # noqa: F401
    DIRECTIONS,  # noqa: F401
    MODES,  # noqa: F401
    PROTOCOLS,  # noqa: F401
    consistency_shifts,
    segmentation_shifts,
    shift_images,
)

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
