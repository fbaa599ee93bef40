"""Evaluation protocols for shift invariance, segmentation and reconstruction.

(docs/design.md, section 5.) The public face of `lps_keras.evaluation.shifts` (seeded
shift draws, `shift_images`), `lps_keras.evaluation.classification` (`accuracy`,
`shift_consistency`, `consistency_vs_shift`), `lps_keras.evaluation.segmentation` (mASSC,
mean IoU, `SegmentationMeanIoU`) and `lps_keras.evaluation.reconstruction` (fastMRI's
`nmse`, `psnr`, `ssim`; the APS-U shift-equivariance protocols `equivariance_nmse`,
`psnr_shift_change`, `equivariance_nmse_vs_shift`).

Every classification and segmentation function returns a percentage; the
reconstruction metrics return PSNR in dB, SSIM in [0, 1] and NMSE as a plain ratio.
Every protocol draws its shifts from a seeded generator, per
image: image `i` always gets the same shifts for a given `seed`, whatever the batch size
or the way the data is split into batches (the original code drew one shift per batch).

Models: pass a Keras model (called through `predict_on_batch`, i.e. in inference mode), a
Keras layer (called with `training=False`), or any callable that maps a float32 NHWC numpy
batch to logits (called with `training=False` when its signature accepts it). Outputs of
shape `[B, K]` (classification) or `[B, H, W, K]` (segmentation) are turned into classes
with an argmax; outputs of shape `[B]` or `[B, H, W]` are taken as class ids already.
Reconstruction models return images `[B, H, W, C_out]` of the input's size, used as they
are.

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
from lps_keras.evaluation.reconstruction import (
    equivariance_nmse,
    equivariance_nmse_vs_shift,
    nmse,
    psnr,
    psnr_shift_change,
    reconstruction_metrics,
    ssim,
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
    equivariance_shifts,
    segmentation_shifts,
    shift_images,
)

__all__ = [
    "SegmentationMeanIoU",
    "accuracy",
    "confusion_matrix",
    "consistency_shifts",
    "consistency_vs_shift",
    "equivariance_nmse",
    "equivariance_nmse_vs_shift",
    "equivariance_shifts",
    "mean_iou",
    "nmse",
    "per_class_iou",
    "psnr",
    "psnr_shift_change",
    "reconstruction_metrics",
    "segmentation_shift_consistency",
    "segmentation_shifts",
    "shift_consistency",
    "shift_images",
    "ssim",
]
