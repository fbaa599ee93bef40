"""MRI reconstruction math: column masks, centred orthonormal FFTs, zero-filled images,
instance normalisation and centre crops.

The conventions are those of the fastMRI single-coil challenge (and of the APS-U MRI code,
which uses fastMRI's data transforms):

- k-space is stored *centred*: the DC component sits at index `(H // 2, W // 2)`.
  `fft2c` maps an image to centred k-space (`ifftshift -> fft2d -> fftshift` over the last
  two axes) and `ifft2c` back; both are scaled by `1 / sqrt(H * W)` (resp. `sqrt(H * W)`
  for the inverse), so they are orthonormal (`numpy.fft` with `norm="ortho"`): they
  preserve energy (Parseval) and are each other's inverse.
- Undersampling keeps whole k-space *columns* (the last axis, the phase-encoding
  direction): `random_mask` has the semantics of fastMRI's `RandomMaskFunc`.
- The network input is the magnitude of the zero-filled inverse FFT (`zero_filled`),
  instance-normalised (`normalize_instance`, mean and unbiased standard deviation over the
  image, as `torch.Tensor.std`) and clamped to `[-6, 6]`; the target is normalised with the
  *input's* mean and standard deviation and clamped likewise (fastMRI's
  `UnetDataTransform`). `normalized_pair` does both.

The tensor functions take TensorFlow (or NumPy) inputs and return tensors, so they run
inside `tf.data` pipelines; `random_mask` is NumPy, as it only draws seeded randomness.
Complex images use TensorFlow's native complex dtypes (not a trailing axis of 2).
"""

import numbers

import numpy as np
import tensorflow as tf

__all__ = [
    "CLAMP",
    "center_crop",
    "complex_center_crop",
    "fft2c",
    "ifft2c",
    "mask_probability",
    "normalize",
    "normalize_instance",
    "normalized_pair",
    "random_mask",
    "random_masks",
    "zero_filled",
]

CLAMP = 6.0  # fastMRI's UnetDataTransform clamps normalised images to [-6, 6]
_AXES = (-2, -1)


# ----------------------------------------------------------------------------------------------
# Masks


def _center_band(num_columns, center_fraction):
    """`(start, width)` of the fully sampled centre band (fastMRI's placement)."""
    width = int(round(num_columns * center_fraction))
    return (num_columns - width + 1) // 2, width


def mask_probability(num_columns, acceleration=4, center_fraction=0.08):
    """The probability with which `random_mask` keeps each column outside the centre band:
    `(num_columns / acceleration - num_low) / (num_columns - num_low)`, so that the expected
    number of kept columns is `num_columns / acceleration`."""
    _, num_low = _center_band(num_columns, center_fraction)
    if num_low >= num_columns:
        return 1.0
    return (num_columns / acceleration - num_low) / (num_columns - num_low)


def _check_mask_args(num_columns, acceleration, center_fraction):
    if not isinstance(num_columns, numbers.Integral) or num_columns < 1:
        raise ValueError(f"`num_columns` must be a positive int, got {num_columns!r}.")
    if not acceleration >= 1:
        raise ValueError(f"`acceleration` must be >= 1, got {acceleration!r}.")
    if not 0.0 <= center_fraction <= 1.0:
        raise ValueError(f"`center_fraction` must be in [0, 1], got {center_fraction!r}.")
    if round(num_columns * center_fraction) > num_columns / acceleration:
        raise ValueError(
            f"center_fraction={center_fraction} keeps more columns than acceleration="
            f"{acceleration} allows ({num_columns} / {acceleration}); lower the centre "
            "fraction or the acceleration."
        )


def random_masks(rng, num_masks, num_columns, acceleration=4, center_fraction=0.08):
    """`num_masks` independent column masks (float32 `[num_masks, num_columns]`) drawn from
    the NumPy Generator `rng` (see `random_mask`). Mask `i` uses the `i`-th row of
    `rng.random((num_masks, num_columns))`, so a smaller batch is a prefix of a larger one."""
    _check_mask_args(num_columns, acceleration, center_fraction)
    start, width = _center_band(num_columns, center_fraction)
    prob = mask_probability(num_columns, acceleration, center_fraction)
    masks = rng.random((int(num_masks), num_columns)) < prob
    masks[:, start : start + width] = True
    return masks.astype(np.float32)


def random_mask(num_columns, acceleration=4, center_fraction=0.08, seed=None):
    """A random k-space column mask with the semantics of fastMRI's `RandomMaskFunc`.

    The `round(num_columns * center_fraction)` centre columns (starting at
    `(num_columns - num_low + 1) // 2`, as fastMRI places them; the DC column
    `num_columns // 2` is always inside for a non-empty band) are always kept; every other
    column is kept independently with probability `mask_probability(...)`, so on average
    `num_columns / acceleration` columns are kept. Equal seeds give equal masks. (The
    random stream is NumPy's `Generator`, not fastMRI's `RandomState`: the law is the same,
    the individual masks are not.)

    Args:
        num_columns: Number of k-space columns (the last axis of the k-space).
        acceleration: Undersampling factor (4 in the APS-U paper).
        center_fraction: Fraction of fully sampled low-frequency columns (0.08).
        seed: Anything `numpy.random.default_rng` accepts (an int, a sequence of
            non-negative ints such as `tuple(map(ord, file_name))`), or a Generator.

    Returns:
        float32 `[num_columns]` of 0s and 1s.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return random_masks(rng, 1, num_columns, acceleration, center_fraction)[0]


# ----------------------------------------------------------------------------------------------
# Centred orthonormal FFTs


def _as_complex(x):
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_complex:
        x = tf.complex(tf.cast(x, tf.float32), tf.zeros_like(x, tf.float32))
    return x


def _sqrt_size(x):
    shape = tf.shape(x)
    size = tf.cast(shape[-2] * shape[-1], x.dtype.real_dtype)
    return tf.cast(tf.sqrt(size), x.dtype)


def fft2c(image):
    """Centred orthonormal 2-D FFT over the last two axes: image -> centred k-space.

    `fftshift(fft2d(ifftshift(image))) / sqrt(H * W)`, equal to
    `numpy.fft.fftshift(numpy.fft.fft2(numpy.fft.ifftshift(x, axes), norm="ortho"), axes)`.
    Real inputs are promoted to complex64.
    """
    x = _as_complex(image)
    k = tf.signal.fftshift(tf.signal.fft2d(tf.signal.ifftshift(x, axes=_AXES)), axes=_AXES)
    return k / _sqrt_size(x)


def ifft2c(kspace):
    """Centred orthonormal inverse 2-D FFT over the last two axes: centred k-space -> image.

    The inverse of `fft2c` (`fftshift(ifft2d(ifftshift(k))) * sqrt(H * W)`).
    """
    k = _as_complex(kspace)
    x = tf.signal.fftshift(tf.signal.ifft2d(tf.signal.ifftshift(k, axes=_AXES)), axes=_AXES)
    return x * _sqrt_size(k)


def zero_filled(kspace, mask):
    """Magnitude of the zero-filled reconstruction: `|ifft2c(kspace * mask)|`.

    Args:
        kspace: Centred k-space, complex `[..., H, W]`.
        mask: Column mask `[W]` (or anything broadcasting against `kspace`), 0/1 values.

    Returns:
        float32 (float64 for complex128 k-space) `[..., H, W]`.
    """
    k = _as_complex(kspace)
    mask = tf.cast(tf.convert_to_tensor(mask), k.dtype.real_dtype)
    return tf.abs(ifft2c(k * tf.cast(mask, k.dtype)))


# ----------------------------------------------------------------------------------------------
# Normalisation


def normalize(x, mean, std, eps=0.0):
    """`(x - mean) / (std + eps)`."""
    return (x - mean) / (std + eps)


def normalize_instance(x, eps=1e-11):
    """Instance normalisation of real images over their last two axes.

    Returns `(normalised, mean, std)`, where `mean` and `std` (the unbiased standard
    deviation, dividing by `H * W - 1`, as fastMRI's `torch.Tensor.std`) keep dims so they
    broadcast against `x` (`[..., 1, 1]`), and `normalised = (x - mean) / (std + eps)`.
    """
    x = tf.convert_to_tensor(x)
    mean = tf.reduce_mean(x, axis=_AXES, keepdims=True)
    n = tf.cast(tf.shape(x)[-2] * tf.shape(x)[-1], x.dtype)
    var = tf.reduce_sum(tf.square(x - mean), axis=_AXES, keepdims=True) / tf.maximum(n - 1, 1)
    std = tf.sqrt(var)
    return normalize(x, mean, std, eps), mean, std


def normalized_pair(image, target, eps=1e-11, clamp=CLAMP):
    """fastMRI's U-Net units: the input instance-normalised, the target normalised with the
    input's mean and std, both clamped to `[-clamp, clamp]`. Works on `[..., H, W]`."""
    image, mean, std = normalize_instance(image, eps)
    target = normalize(tf.cast(target, image.dtype), mean, std, eps)
    return (tf.clip_by_value(image, -clamp, clamp), tf.clip_by_value(target, -clamp, clamp))


# ----------------------------------------------------------------------------------------------
# Centre crops


def _crop_box(height, width, size):
    if isinstance(size, numbers.Integral):
        size = (size, size)
    ch, cw = size
    if isinstance(ch, numbers.Integral) and isinstance(height, numbers.Integral):
        if not (0 < ch <= height and 0 < cw <= width):
            raise ValueError(
                f"Cannot centre-crop a {height}x{width} image to {ch}x{cw}: the crop must be "
                "positive and no larger than the image."
            )
    return (height - ch) // 2, (width - cw) // 2, ch, cw


def center_crop(x, size):
    """The centre `size` (`int` or `(h, w)`) of the last two axes of `x` (fastMRI's
    `center_crop`: the crop starts at `(H - h) // 2`, `(W - w) // 2`). Sizes may be tensors.

    Raises:
        ValueError: a static crop larger than the image, or not positive.
    """
    x = tf.convert_to_tensor(x)
    static = x.shape[-2:]
    if static[0] is not None and static[1] is not None:
        h, w = int(static[0]), int(static[1])
    else:
        h, w = tf.shape(x)[-2], tf.shape(x)[-1]
    top, left, ch, cw = _crop_box(h, w, size)
    return x[..., top : top + ch, left : left + cw]


def complex_center_crop(x, size):
    """`center_crop` of a complex image (native complex dtype, last two axes spatial)."""
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_complex:
        raise TypeError(f"complex_center_crop expects a complex tensor, got {x.dtype.name}.")
    return center_crop(x, size)
