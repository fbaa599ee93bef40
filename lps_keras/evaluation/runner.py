"""`evaluate`: the protocols of `lps_keras.metrics` on raw pixels, batched and compiled.

One path for `train.py` (what `results.json` holds) and `eval.py`. Every classification
and segmentation number is a percentage (0-100); reconstruction reports PSNR in dB, SSIM
in [0, 1] and NMSE as a plain ratio (the result's `units` says so).

Speed: the metrics functions get large chunks of images (a few thousand small images at a
time) and a predictor that runs them through the model's compiled forward pass in batches
of exactly `batch_size` (the last one zero-padded, so the graph is traced once per image
shape), returning class ids. Predictions are cached by the content of each chunk, so a
pass that repeats an earlier one (the unshifted images that accuracy, the consistency
curves and mASSC all start from; a shift of size 0) is not run again. Per-image results
do not depend on the chunk or batch size: every shift is drawn per image.
"""

import hashlib
import time

import numpy as np

from lps_keras.data import dataset_info
from lps_keras.evaluation.classification import accuracy, consistency_vs_shift, shift_consistency
from lps_keras.evaluation.loading import load_arrays
from lps_keras.evaluation.reconstruction import DEFAULT_MAX_SHIFT as RECONSTRUCTION_MAX_SHIFT
from lps_keras.evaluation.reconstruction import (
    equivariance_nmse_vs_shift,
    nmse,
    psnr,
    reconstruction_metrics,
    ssim,
)
from lps_keras.evaluation.segmentation import (
    confusion_matrix,
    mean_iou,
    per_class_iou,
    segmentation_shift_consistency,
)
from lps_keras.evaluation.shifts import DEFAULT_MAX_SHIFT, MODES

EVAL_MODES = ("class_accuracy", "shift_consistency", "segmentation", "reconstruction")
UNITS = "percent (0-100)"
RECONSTRUCTION_UNITS = ("psnr, zero_filled_psnr and psnr_shift_change in dB; ssim and "
                        "zero_filled_ssim in [0, 1]; nmse, zero_filled_nmse and "
                        "equivariance_nmse (and its curve) as plain ratios, not percent")
# The modes that fit each task (the first is the default).
TASK_MODES = {"classification": ("shift_consistency", "class_accuracy"),
              "segmentation": ("segmentation",), "regression": ("reconstruction",)}
# Float32 elements per chunk handed to a metrics function (64 MB; the shifted copies and
# masks it makes are of the same order).
_CHUNK_ELEMENTS = 2**24
_SEG_NUM_SHIFTS = 5


def default_eval_mode(task):
    """The protocol set of a task: `"segmentation"`, `"reconstruction"` (regression) or
    `"shift_consistency"` (classification)."""
    return modes_of_task(task)[0]


def modes_of_task(task):
    """The eval modes that fit a task (`TASK_MODES`), default first."""
    return TASK_MODES.get(task, TASK_MODES["classification"])


class _Predictor:
    """Raw numpy images -> class ids through `model.predict_classes`, in fixed batches
    (`images=True`: the output images of `model(...)`, not cached).

    Caches results by chunk content and prints one line per pass over the images.
    """

    def __init__(self, model, batch_size, num_images, log, images=False):
        self.model = model
        self.batch_size = int(batch_size)
        self.num_images = int(num_images)
        self.log = log
        self._images = images
        self._cache = {}
        self._step = None

    def begin(self, step, passes):
        self._step, self._passes = step, passes
        self._done = self._fresh = self._pass = 0
        self._start = time.time()

    def __call__(self, images):
        images = np.ascontiguousarray(images, dtype=np.float32)
        key = (images.shape, hashlib.blake2b(images.data, digest_size=16).digest())
        ids = self._cache.get(key)
        if ids is None:
            ids = self._run(images)
            if not self._images:  # output images are large; their passes are not repeated
                self._cache[key] = ids
            self._fresh += len(images)
        self._progress(len(images))
        return ids

    def _run(self, images):
        n, bs = len(images), self.batch_size
        out = []
        for start in range(0, n, bs):
            batch = images[start:start + bs]
            if len(batch) < bs:  # same shape as every other batch: no retracing
                batch = np.concatenate(
                    [batch, np.zeros((bs - len(batch),) + batch.shape[1:], batch.dtype)])
            run = self.model if self._images else self.model.predict_classes
            out.append(run(batch)[:min(bs, n - start)])
        return np.concatenate(out)

    def _progress(self, count):
        if self._step is None:
            return
        self._done += count
        while self._done >= (self._pass + 1) * self.num_images and self._pass < self._passes:
            self._pass += 1
            if self.log:
                fresh = self._fresh
                note = "reused" if fresh == 0 else f"{time.time() - self._start:.1f} s"
                self.log(f"  {self.model.name}: {self._step}, pass {self._pass}/"
                         f"{self._passes} ({self.num_images} images, {note})")
            self._fresh = 0
            self._start = time.time()


_SUMMARY = (("accuracy", "accuracy"), ("mean_iou", "mIoU"),
            ("circular_consistency", "circular consistency"),
            ("standard_consistency", "standard consistency"),
            ("circular_massc", "circular mASSC"), ("standard_massc", "standard mASSC"))


_RECONSTRUCTION_SUMMARY = (("psnr", "PSNR {:.2f} dB"), ("ssim", "SSIM {:.4f}"),
                           ("nmse", "NMSE {:.4g}"),
                           ("zero_filled_psnr", "(input: PSNR {:.2f} dB)"),
                           ("equivariance_nmse", "equivariance NMSE {:.3g}"),
                           ("psnr_shift_change", "PSNR change under shifts {:.3g} dB"))


def summary(entry):
    """One line of the headline metrics of a model's entry, e.g. `accuracy 97.10% |
    circular consistency 100.00% | standard consistency 81.30%`, or for reconstruction
    `PSNR 31.20 dB | SSIM 0.8123 | NMSE 0.0123 | (input: PSNR 25.10 dB) | equivariance
    NMSE 0 | PSNR change under shifts 0 dB`."""
    if "psnr" in entry:
        return " | ".join(fmt.format(entry[key]) for key, fmt in _RECONSTRUCTION_SUMMARY
                          if entry.get(key) is not None)
    return " | ".join(f"{label} {entry[key]:.2f}%" for key, label in _SUMMARY if key in entry)


def _chunk_size(images, batch_size):
    per_image = int(np.prod(images.shape[1:]))
    fits = max(1, _CHUNK_ELEMENTS // per_image) // batch_size * batch_size
    return max(batch_size, fits)


def evaluated_image_side(dataset, image_size=None, crop_size=None):
    """The side of the (square) images `evaluate` scores for these data settings: the
    crop of the ImageNet family (default 224), the padded evaluation crop of VOC (default
    512) and the centre crop of fastMRI (default 320), otherwise the generated or stored
    image size."""
    info = dataset_info(dataset)
    if dataset in ("voc", "fastmri"):
        return int(crop_size or info.image_shape[0])
    return int(image_size or info.image_shape[0])


def check_max_shift(max_shift, dataset, image_size=None, crop_size=None, name="max_shift"):
    """Raises ValueError (naming `name`) unless `max_shift` is smaller than the evaluated
    images (`evaluated_image_side`): a larger circular shift wraps round to a smaller one,
    and a larger standard shift leaves no image."""
    side = evaluated_image_side(dataset, image_size, crop_size)
    if max_shift >= side:
        raise ValueError(
            f"{name}={max_shift} is not smaller than the evaluated {dataset} images "
            f"({side}x{side}): a circular shift that large wraps round and a standard one "
            f"leaves no image. Use a {name} below {side}.")


def evaluate(model, eval_mode, dataset, *, split="test", data_dir=None, num_examples=None,
             seed=0, batch_size=64, protocol=None, max_shift=None, baseline=None,
             image_size=None, crop_size=None, source="auto", curves=True, log=None):
    """Runs one protocol set on raw pixels; returns a JSON-ready dict.

    Args:
        model: a `LoadedModel` (called on raw 0-255 images).
        eval_mode: one of `EVAL_MODES`. `"class_accuracy"`: top-1 accuracy;
            `"shift_consistency"`: accuracy, C-Cons and S-Cons (`shift_consistency`)
            and, with `curves`, consistency against shift size; `"segmentation"`: mIoU,
            per-class IoU and circular/standard mASSC; `"reconstruction"` (regression
            data): PSNR, SSIM, NMSE of the outputs and of the inputs themselves
            (`zero_filled_*`, the baseline to beat), `equivariance_nmse`,
            `psnr_shift_change` and, with `curves`, `equivariance_nmse_vs_shift` (see
            `lps_keras.evaluation.reconstruction`).
        dataset, split, data_dir, num_examples, image_size, crop_size, source: the data
            (see `load_arrays`); the first `num_examples` examples of the split.
        seed: seed of every shift draw (shifts are drawn per image).
        batch_size: images per forward pass; does not change the results.
        protocol: `"cifar"` or `"imagenet"`; default: the dataset's
            (`DatasetInfo.protocol`).
        max_shift: largest shift; default 3 (cifar), 32 (imagenet, segmentation), 16
            (reconstruction).
        baseline: another `LoadedModel`, evaluated the same way.
        curves: with `"shift_consistency"`, also consistency against shift size.
        log: callable taking one progress line per pass (None: silent).

    Returns:
        `{"eval_mode", "dataset", "split", "protocol", "seed", "max_shift",
        "num_examples", "units", "models": {label: metrics}}`; every classification and
        segmentation metric is a percentage in [0, 100] (`per_class_iou` maps class
        names to a percentage, or None for a class absent from both labels and
        predictions); reconstruction units are in `units`.

    Raises:
        ValueError: an unknown mode, or a mode that does not fit the dataset's task.
        (`max_shift` is not checked here, so that a run's final evaluation never fails
        on it after training; callers check it up front with `check_max_shift`.)
    """
    if eval_mode not in EVAL_MODES:
        raise ValueError(f"`eval_mode` must be one of {EVAL_MODES}; got {eval_mode!r}.")
    info = dataset_info(dataset)
    if eval_mode not in modes_of_task(info.task):
        raise ValueError(
            f"eval_mode {eval_mode!r} does not fit {dataset}, a {info.task} dataset; use "
            + " or ".join(repr(m) for m in modes_of_task(info.task)) + "."
        )
    protocol = protocol or info.protocol
    models = [model] + ([baseline] if baseline is not None else [])
    data = dict(data_dir=data_dir, num_examples=num_examples, seed=seed,
                image_size=image_size, crop_size=crop_size, source=source)
    if eval_mode == "segmentation":
        shift = 32 if max_shift is None else int(max_shift)
    elif eval_mode == "reconstruction":
        shift = RECONSTRUCTION_MAX_SHIFT if max_shift is None else int(max_shift)
    else:
        shift = DEFAULT_MAX_SHIFT[protocol] if max_shift is None else int(max_shift)
    images, targets = load_arrays(dataset, split, **data)
    result = {"eval_mode": eval_mode, "dataset": dataset, "split": split,
              "protocol": protocol if info.task == "classification" else None, "seed": seed,
              "num_examples": int(len(images)), "units": UNITS, "models": {}}
    if eval_mode == "reconstruction":
        result.update(max_shift=shift, units=RECONSTRUCTION_UNITS)
        for m in models:
            result["models"][m.name] = _reconstruction(
                _Predictor(m, batch_size, len(images), log, images=True), images, targets,
                shift, seed, batch_size, curves)
        return result
    if eval_mode == "segmentation":
        result["max_shift"] = shift
        for m in models:
            result["models"][m.name] = _segmentation(
                _Predictor(m, batch_size, len(images), log), images, targets, info, shift,
                seed, batch_size)
        return result

    result["max_shift"] = shift
    cons_images = images
    if protocol == "imagenet" and eval_mode == "shift_consistency":
        # Accuracy on the centre crops; consistency on centre crops `max_shift` larger
        # (256 for 224 and 32), from which the protocol cuts shifted 224 crops.
        side = (image_size or info.image_shape[0]) + shift
        cons_images, _ = load_arrays(dataset, split, **{**data, "image_size": side},
                                     resize_size=side)
    for m in models:
        predict = _Predictor(m, batch_size, len(images), log)
        chunk = _chunk_size(cons_images, batch_size)
        predict.begin("accuracy", 1)
        entry = {"accuracy": accuracy(predict, images, targets,
                                      batch_size=_chunk_size(images, batch_size))}
        if eval_mode == "shift_consistency":
            for mode in MODES:
                predict.begin(f"{mode} consistency", 2)
                entry[f"{mode}_consistency"] = shift_consistency(
                    predict, cons_images, mode=mode, max_shift=shift, seed=seed,
                    batch_size=chunk, protocol=protocol)
            if curves:
                top = shift
                sizes = list(range(0, top + 1, max(1, top // 8)))
                for mode, pictures in (("circular", cons_images), ("standard", images)):
                    predict.begin(f"{mode} consistency vs shift", 1 + len(sizes))
                    entry[f"{mode}_vs_shift"] = {
                        str(k): v for k, v in consistency_vs_shift(
                            predict, pictures, shifts=sizes, mode=mode, seed=seed,
                            batch_size=_chunk_size(pictures, batch_size)).items()}
        result["models"][m.name] = entry
    return result


def _segmentation(predict, images, masks, info, max_shift, seed, batch_size):
    chunk = _chunk_size(images, batch_size)
    predict.begin("segmentation", 1)
    preds = np.concatenate([predict(images[i:i + chunk]) for i in range(0, len(images), chunk)])
    confusion = confusion_matrix(masks, preds, info.num_classes,
                                 ignore_label=info.ignore_index)
    names = info.class_names or tuple(str(k) for k in range(info.num_classes))
    ious = per_class_iou(confusion)
    entry = {
        "mean_iou": mean_iou(confusion),  # already a percentage
        "per_class_iou": {name: (None if np.isnan(v) else float(v))
                          for name, v in zip(names, ious, strict=True)},
    }
    for mode in MODES:
        predict.begin(f"{mode} mASSC", 1 + _SEG_NUM_SHIFTS)
        entry[f"{mode}_massc"] = segmentation_shift_consistency(
            predict, images, masks, mode=mode, num_shifts=_SEG_NUM_SHIFTS,
            max_shift=max_shift, ignore_label=info.ignore_index, seed=seed, batch_size=chunk)
    return entry


def _zero_filled(inputs, targets):
    """The metrics of the inputs themselves (None when their shape is not the targets')."""
    if inputs.shape != targets.shape:
        return dict.fromkeys(("zero_filled_psnr", "zero_filled_ssim", "zero_filled_nmse"))
    return {"zero_filled_psnr": psnr(targets, inputs), "zero_filled_ssim": ssim(targets, inputs),
            "zero_filled_nmse": nmse(targets, inputs)}


def _reconstruction(predict, inputs, targets, max_shift, seed, batch_size, curves):
    chunk = _chunk_size(inputs, batch_size)
    predict.begin("reconstruction and equivariance", 2)
    metrics = reconstruction_metrics(predict, inputs, targets, max_shift=max_shift, seed=seed,
                                     batch_size=chunk)
    entry = {k: metrics[k] for k in ("psnr", "ssim", "nmse")}
    entry.update(_zero_filled(inputs, targets))
    entry.update({k: metrics[k] for k in ("equivariance_nmse", "psnr_shift_change")})
    if curves:
        sizes = list(range(0, max_shift + 1, max(1, max_shift // 8)))
        predict.begin("equivariance NMSE vs shift", 1 + len(sizes))
        entry["equivariance_nmse_vs_shift"] = {
            str(k): v for k, v in equivariance_nmse_vs_shift(
                predict, inputs, shifts=sizes, seed=seed, batch_size=chunk).items()}
    return entry
