"""Reconstruction protocols: NMSE, PSNR, SSIM and shift equivariance (`lps_keras.metrics`).

Image-to-image regression (MRI reconstruction; APS-U: Chaman & Dokmanic, "Truly
shift-equivariant CNNs with adaptive polyphase upsampling", 2021).

Definitions (fastMRI's `fastmri/evaluate.py`, applied per image):

- `nmse`: `||gt - pred||^2 / ||gt||^2`.
- `psnr`: `10 log10(maxval^2 / mean((gt - pred)^2))` in dB, `maxval = gt.max()` by
  default (scikit-image's `peak_signal_noise_ratio` with `data_range=maxval`).
- `ssim`: scikit-image's `structural_similarity` of each 2-D image (one channel) with
  `data_range=maxval`, a 7x7 uniform window, `K1 = 0.01`, `K2 = 0.03` and the sample
  covariance (`use_sample_covariance=True`): the SSIM map is averaged over the pixels at
  least 3 from the border (scikit-image crops `(win_size - 1) // 2`, so the border
  padding never matters); channels are averaged.

Unit of evaluation: one image, `[H, W]` or `[H, W, C]`. Arrays `[N, H, W, C]` (or
`[N, H, W]`) give each image's value; the functions return their mean over images
(`per_image=True`: the array `[N]`). The default `maxval` of an image is *that image's*
target maximum. fastMRI instead scores a whole volume (all slices of one scan) with the
volume's maximum as `maxval` and its NMSE over the whole volume; our data are single
slices, so per-slice numbers are not comparable digit for digit with fastMRI's
per-volume table (a slice darker than its volume's brightest slice gets a lower maxval
here, hence a lower PSNR). Pass `maxval` (a scalar or one per image) to fix it instead.

Computed in float64 with NumPy only (the 7x7 box means from cumulative sums); agrees
with scikit-image 0.26 to ~1e-12 (tests/fixtures/reconstruction/).

Shift equivariance (circular shifts, `np.roll` on H and W, one seeded shift per image
from `equivariance_shifts`, so image `i` gets the same shift whatever the batching):

- `equivariance_nmse`: mean over images of `nmse(shift(f(x)), f(shift(x)))`, shifts
  uniform in `[-max_shift, max_shift]^2` (0 for an exactly equivariant model).
- `psnr_shift_change`: mean over images of
  `|psnr(y, f(x)) - psnr(shift(y), f(shift(x)))|` in dB, with the same shifts.
- `equivariance_nmse_vs_shift`: the equivariance NMSE for each shift size `s`
  (Chebyshev norm `max(|dy|, |dx|) == s`, a seeded random offset of that size per
  image, the draws `consistency_vs_shift` uses).

Models: a Keras model, layer or callable mapping a float32 NHWC batch to an output
`[B, H, W, C_out]` of the input's spatial size, called in inference mode (see
`lps_keras.metrics`). Outputs keep their dtype until the metrics (float64): a model that
computes in float64 is scored without float32 rounding.

Example:

>>> x = np.random.default_rng(0).normal(size=(2, 8, 8, 1))
>>> nmse(x, x), ssim(x, x)
(0.0, 1.0)
"""

import numpy as np

from lps_keras.checks import check_int
from lps_keras.evaluation.predict import _iter_batches, _predict_fn
from lps_keras.evaluation.shifts import (
    _check_seed,
    _size_offsets,
    equivariance_shifts,
    shift_images,
)

SSIM_WIN_SIZE = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03
DEFAULT_MAX_SHIFT = 16


# ---------------------------------------------------------------------------------------
# Image metrics


def _as_image_stack(array, name):
    """float64 `[N, H, W, C]` from `[H, W]` (one image), `[N, H, W]` or `[N, H, W, C]`."""
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 2:
        array = array[None, :, :, None]
    elif array.ndim == 3:
        array = array[..., None]
    elif array.ndim != 4:
        raise ValueError(f"`{name}` must be an image [H, W] or images [N, H, W] / "
                         f"[N, H, W, C]; got shape {array.shape}.")
    return array


def _pair(gt, pred):
    gt, pred = _as_image_stack(gt, "gt"), _as_image_stack(pred, "pred")
    if gt.shape != pred.shape:
        raise ValueError(f"`gt` and `pred` must have the same shape; got {gt.shape} and "
                         f"{pred.shape}. The model output must match the target.")
    if gt.shape[0] == 0:
        raise ValueError("No images to evaluate: the input is empty.")
    return gt, pred


def _maxvals(gt, maxval):
    """One maxval per image: the image's target maximum, or the given value(s)."""
    if maxval is None:
        values = gt.reshape(len(gt), -1).max(axis=1)
        what = "its target maximum"
    else:
        values = np.broadcast_to(np.asarray(maxval, np.float64), (len(gt),))
        what = "`maxval`"
    bad = np.flatnonzero(~(values > 0))
    if bad.size:
        raise ValueError(
            f"The peak value (maxval) of image {int(bad[0])} is {values[bad[0]]!r}, from "
            f"{what}; PSNR and SSIM need a positive maxval. Pass `maxval` explicitly (e.g. "
            "the data's largest value) for targets that are not positive somewhere.")
    return values


def _reduce(values, per_image):
    return values if per_image else float(np.mean(values))


def _ratio(num, den):
    """`num / den`, with 0/0 = 0 (a zero target matched exactly) and x/0 = inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    return np.where(den > 0, out, np.where(num == 0, 0.0, np.inf))


def nmse(gt, pred, *, per_image=False):
    """Normalised MSE `||gt - pred||^2 / ||gt||^2` per image, averaged (a ratio, not %).

    0 for `pred == gt`; 1 for `pred == 0`. An all-zero target gives 0 when matched
    exactly, else inf.
    """
    gt, pred = _pair(gt, pred)
    num = np.sum((gt - pred) ** 2, axis=(1, 2, 3))
    den = np.sum(gt**2, axis=(1, 2, 3))
    return _reduce(_ratio(num, den), per_image)


def psnr(gt, pred, maxval=None, *, per_image=False):
    """PSNR in dB per image, `10 log10(maxval^2 / MSE)`, averaged over images.

    `maxval`: None (each image's target maximum, as fastMRI's `data_range=gt.max()`), a
    scalar, or one value per image. A perfect prediction gives inf.
    """
    gt, pred = _pair(gt, pred)
    peak = _maxvals(gt, maxval)
    mse = np.mean((gt - pred) ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(peak**2 / mse)
    return _reduce(values, per_image)


def _box_means(images, size):
    """Means over every `size x size` window lying fully inside `[N, H, W]` images:
    `[N, H - size + 1, W - size + 1]` (the 'valid' part of a uniform filter)."""
    c = np.cumsum(np.cumsum(images, axis=1), axis=2)
    c = np.pad(c, ((0, 0), (1, 0), (1, 0)))
    s = c[:, size:, size:] - c[:, :-size, size:] - c[:, size:, :-size] + c[:, :-size, :-size]
    return s / float(size * size)


def ssim(gt, pred, maxval=None, *, per_image=False):
    """SSIM in [-1, 1] (1 = identical) per image, as scikit-image computes it, averaged.

    Each 2-D channel is scored with `data_range = maxval` (default: the image's target
    maximum), a 7x7 uniform window, K1 = 0.01, K2 = 0.03 and the sample covariance; the
    SSIM map is averaged away from a 3-pixel border; channels, then images, are
    averaged. Images must be at least 7x7.
    """
    gt, pred = _pair(gt, pred)
    n, h, w, c = gt.shape
    win = SSIM_WIN_SIZE
    if min(h, w) < win:
        raise ValueError(f"SSIM needs images of at least {win}x{win} (its window); got "
                         f"{h}x{w}.")
    peak = _maxvals(gt, maxval)
    x = np.moveaxis(gt, 3, 1).reshape(n * c, h, w)
    y = np.moveaxis(pred, 3, 1).reshape(n * c, h, w)
    # The crop of (win - 1) // 2 that scikit-image applies before averaging leaves
    # exactly the windows that lie fully inside the image: no padding is involved.
    ux, uy = _box_means(x, win), _box_means(y, win)
    uxx, uyy, uxy = _box_means(x * x, win), _box_means(y * y, win), _box_means(x * y, win)
    cov_norm = win * win / (win * win - 1.0)  # sample covariance
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    r = np.repeat(peak, c)[:, None, None]
    c1, c2 = (SSIM_K1 * r) ** 2, (SSIM_K2 * r) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    values = s.reshape(n, c, -1).mean(axis=2).mean(axis=1)
    return _reduce(values, per_image)


# ---------------------------------------------------------------------------------------
# Shift equivariance


def _outputs(predict, x):
    out = predict(x)
    if out.ndim == 3:
        out = out[..., None]
    if out.ndim != 4 or out.shape[:3] != x.shape[:3]:
        raise ValueError(
            f"A reconstruction model must map images [B, H, W, C] to images of the same "
            f"size [B, H, W, C_out]; got {out.shape} for inputs {x.shape}. Evaluate "
            "classifiers and segmenters with their own protocols.")
    return out


def _shift_passes(model_or_fn, inputs, targets, shifts_of, batch_size):
    """Per batch: `(x, y, f(x), f(shift x), shifts)` with `shifts = shifts_of(start, n)`."""
    predict = _predict_fn(model_or_fn)
    start = 0
    for x, y in _iter_batches(inputs, targets, batch_size, "targets"):
        out = _outputs(predict, x)
        shifts = shifts_of(start, len(x))
        shifted_out = _outputs(predict, shift_images(x, shifts))
        yield x, y, out, shifted_out, shifts
        start += len(x)


def _check_inputs(inputs):
    if hasattr(inputs, "shape") and len(inputs) == 0:
        raise ValueError("No images to evaluate: the input is empty.")


def reconstruction_metrics(model_or_fn, inputs, targets=None, *, max_shift=DEFAULT_MAX_SHIFT,
                           seed=0, maxval=None, batch_size=64):
    """Everything in one pass over `f(x)` and `f(shift x)`: a dict of `psnr`, `ssim`,
    `nmse` (of `f(x)` against `targets`), `equivariance_nmse` and `psnr_shift_change`
    (the shifts of `equivariance_shifts(max_shift, seed)`), each a mean over images.

    Args:
        model_or_fn: Keras model or callable `float32 [B, H, W, C] -> [B, H, W, C_out]`.
        inputs: array `[N, H, W, C]`, or an iterable of `(inputs, targets)` batches.
        targets: array `[N, H, W, C_out]` (None with an iterable).
        max_shift: shifts uniform in `[-max_shift, max_shift]^2`.
        seed: non-negative int.
        maxval: see `psnr` (None: each image's target maximum).
        batch_size: images per model call (arrays only).
    """
    max_shift = check_int("max_shift", max_shift, 0)
    seed = _check_seed(seed)
    _check_inputs(inputs)
    if hasattr(inputs, "shape") and targets is None:
        raise ValueError("`targets` is required when `inputs` is an array.")
    parts = {k: [] for k in ("psnr", "ssim", "nmse", "equivariance_nmse",
                             "psnr_shift_change")}
    shifts_of = lambda start, n: equivariance_shifts(  # noqa: E731
        n, max_shift=max_shift, seed=seed, start=start)
    for _, y, out, shifted_out, shifts in _shift_passes(model_or_fn, inputs, targets,
                                                         shifts_of, batch_size):
        if y is None:
            raise ValueError("The dataset must yield `(inputs, targets)` batches.")
        peak = _maxvals(_as_image_stack(y, "targets"), maxval)
        unshifted = psnr(y, out, peak, per_image=True)
        parts["psnr"].append(unshifted)
        parts["ssim"].append(ssim(y, out, peak, per_image=True))
        parts["nmse"].append(nmse(y, out, per_image=True))
        parts["equivariance_nmse"].append(
            nmse(shift_images(out, shifts), shifted_out, per_image=True))
        shifted = psnr(shift_images(np.asarray(y), shifts), shifted_out, peak, per_image=True)
        parts["psnr_shift_change"].append(np.abs(unshifted - shifted))
    if not parts["psnr"]:
        raise ValueError("No images to evaluate: the input is empty.")
    return {k: float(np.mean(np.concatenate(v))) for k, v in parts.items()}


def equivariance_nmse(model_or_fn, inputs, *, max_shift=DEFAULT_MAX_SHIFT, seed=0,
                      batch_size=64, per_image=False):
    """Mean over images of `nmse(shift(f(x)), f(shift(x)))`, one circular shift per image
    uniform in `[-max_shift, max_shift]^2` (`equivariance_shifts`): 0 for an exactly
    shift-equivariant model, a ratio otherwise.

    `inputs`: array `[N, H, W, C]` or an iterable of input batches (or `(inputs, ...)`
    tuples). `per_image=True` returns the values `[N]` (with `equivariance_shifts(N,
    max_shift=max_shift, seed=seed)` they give NMSE against shift size).

    Example:

    >>> x = np.random.default_rng(0).normal(size=(3, 8, 8, 1)).astype("float32")
    >>> equivariance_nmse(lambda b: 2 * b, x, max_shift=3)
    0.0
    """
    max_shift = check_int("max_shift", max_shift, 0)
    seed = _check_seed(seed)
    _check_inputs(inputs)
    shifts_of = lambda start, n: equivariance_shifts(  # noqa: E731
        n, max_shift=max_shift, seed=seed, start=start)
    values = [nmse(shift_images(out, shifts), shifted_out, per_image=True)
              for _, _, out, shifted_out, shifts in _shift_passes(
                  model_or_fn, inputs, None,
                  shifts_of, batch_size)]
    if not values:
        raise ValueError("No images to evaluate: the input is empty.")
    return _reduce(np.concatenate(values), per_image)


def psnr_shift_change(model_or_fn, inputs, targets=None, *, max_shift=DEFAULT_MAX_SHIFT,
                      seed=0, maxval=None, batch_size=64):
    """Mean over images of `|psnr(y, f(x)) - psnr(shift(y), f(shift(x)))|` in dB, with
    the shifts of `equivariance_nmse` (same `max_shift` and `seed`: same shifts).

    0 for an exactly shift-equivariant model. (The APS-U code reports the largest change
    over 10 shifts per image; here one shift per image, as for `equivariance_nmse`.)
    """
    return reconstruction_metrics(model_or_fn, inputs, targets, max_shift=max_shift,
                                  seed=seed, maxval=maxval,
                                  batch_size=batch_size)["psnr_shift_change"]


def equivariance_nmse_vs_shift(model_or_fn, inputs, shifts=None, *,
                               max_shift=DEFAULT_MAX_SHIFT, direction="random", seed=0,
                               batch_size=64):
    """Equivariance NMSE for each shift size `s`: `{s: mean nmse(shift(f(x)), f(shift x))}`.

    Each image is shifted circularly by an offset of Chebyshev size `s`
    (`max(|dy|, |dx|) == s`): `direction="random"` picks one of the `8 s` offsets per
    image (seeded; the draws of `consistency_vs_shift`), `"diagonal"` always `(s, s)`.
    `shifts`: the sizes; None means `range(0, max_shift + 1)`. `s = 0` gives 0 for a
    deterministic model.
    """
    seed = _check_seed(seed)
    if direction not in ("random", "diagonal"):
        raise ValueError(f"`direction` must be one of ('random', 'diagonal'); got "
                         f"{direction!r}.")
    if shifts is None:
        shifts = range(0, check_int("max_shift", max_shift, 0) + 1)
    sizes = list(dict.fromkeys(check_int("shift size", s, 0) for s in shifts))
    if not sizes:
        raise ValueError("`shifts` is empty; pass shift sizes such as `range(0, 17)`.")
    _check_inputs(inputs)
    predict = _predict_fn(model_or_fn)
    values = {s: [] for s in sizes}
    start = 0
    for x, _ in _iter_batches(inputs, None, batch_size, "targets"):
        out = _outputs(predict, x)
        for s in sizes:
            offsets = _size_offsets(s, seed, start, len(x), direction)
            values[s].append(nmse(shift_images(out, offsets),
                                  _outputs(predict, shift_images(x, offsets)),
                                  per_image=True))
        start += len(x)
    if start == 0:
        raise ValueError("No images to evaluate: the input is empty.")
    return {s: float(np.mean(np.concatenate(values[s]))) for s in sizes}
