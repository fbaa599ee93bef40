"""Seedable image augmentations for `tf.data` pipelines.

Every random function takes `seed`, a shape-`[2]` integer tensor as used by TensorFlow's
stateless random ops (a Python int is accepted too and expanded to `[seed, 0]`). Equal seeds
give equal outputs, whatever the thread that runs the map, so a parallel `tf.data.map` stays
reproducible. `seed=None` draws a fresh seed from the global generator (not reproducible).
Pipelines derive one seed per element with `element_seeds` and split it per transform with
`split_seed`, so different transforms of one image are independent.

Functions operate on a single example: images `[H, W, C]`, masks `[H, W]`. Pixel values are
on the 0-255 scale (uint8, or float after a resize); `normalize` maps them to
`(x / 255 - mean) / std`.
"""

import math
import numbers

import tensorflow as tf

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------------------------
# Seeds


def as_seed(seed):
    """Converts `seed` (None, int, or shape-`[2]` tensor) to a shape-`[2]` int64 tensor."""
    if seed is None:
        return tf.random.uniform([2], minval=0, maxval=2**31 - 1, dtype=tf.int64)
    seed = tf.convert_to_tensor(seed)
    if not seed.dtype.is_integer:
        raise TypeError(f"A seed must be an integer tensor, got dtype {seed.dtype.name}.")
    seed = tf.cast(seed, tf.int64)
    if seed.shape.rank == 0:
        return tf.stack([seed, tf.constant(0, tf.int64)])
    if seed.shape.rank != 1 or (seed.shape[0] is not None and seed.shape[0] != 2):
        raise ValueError(f"A seed must be a scalar or have shape [2], got shape {seed.shape}.")
    return seed


def split_seed(seed, num):
    """Derives `num` independent shape-`[2]` seeds from one; returns a list."""
    seeds = tf.random.experimental.stateless_split(as_seed(seed), num=num)
    return [seeds[i] for i in range(num)]


def element_seeds(seed):
    """An infinite dataset of shape-`[2]` int64 seeds, different at every iteration.

    Zip it with a dataset to give each element its own seed. With `seed` set, the stream is
    deterministic but re-drawn each time the dataset is iterated, so every epoch sees new
    augmentations while a rerun of the whole program repeats them exactly.
    """
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(
        2, drop_remainder=True
    )


# ----------------------------------------------------------------------------------------------
# Flips and circular shifts


def _flip_if(x, flag):
    # A select rather than tf.cond: both branches are cheap, and no branch functions need
    # tracing inside every map.
    return tf.where(flag, tf.reverse(x, axis=[1]), x)


def sample_flip(seed=None):
    """A boolean scalar that is True with probability 1/2."""
    return tf.random.stateless_uniform([], as_seed(seed)) < 0.5


def random_flip_left_right(image, seed=None):
    """Mirrors `image` (`[H, W, ...]`) horizontally with probability 1/2."""
    return _flip_if(image, sample_flip(seed))


def sample_shift(max_shift, seed=None):
    """Draws an int32 `[dy, dx]` with each entry uniform in `[-max_shift, max_shift]`."""
    max_shift = int(max_shift)
    if max_shift < 0:
        raise ValueError(f"`max_shift` must be >= 0, got {max_shift}.")
    return tf.random.stateless_uniform(
        [2], as_seed(seed), minval=-max_shift, maxval=max_shift + 1, dtype=tf.int32
    )


def circular_shift(x, shift):
    """Rolls `x` (`[H, W, ...]`) by `shift = [dy, dx]` pixels with wrap-around.

    Same convention as `np.roll(x, (dy, dx), axis=(0, 1))`: content moves down/right for
    positive shifts.
    """
    return tf.roll(x, shift=tf.cast(shift, tf.int32), axis=[0, 1])


def random_circular_shift(image, max_shift, seed=None):
    """Rolls `image` by a random `[dy, dx]` in `[-max_shift, max_shift]` (see `sample_shift`)."""
    return circular_shift(image, sample_shift(max_shift, seed))


# ----------------------------------------------------------------------------------------------
# Crops and resizes


def random_crop_with_padding(image, padding=4, seed=None):
    """Zero-pads `image` by `padding` on each side, then crops back to the original size.

    The CIFAR standard: equivalent to a random translation by up to `padding` pixels with
    zero fill.
    """
    padding = int(padding)
    if padding < 0:
        raise ValueError(f"`padding` must be >= 0, got {padding}.")
    shape = tf.shape(image)
    padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    return tf.image.stateless_random_crop(padded, size=shape, seed=as_seed(seed))


def sample_random_resized_crop_box(
    height, width, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0), seed=None, attempts=10
):
    """Samples a crop box the way Inception / torchvision's RandomResizedCrop does.

    Tries `attempts` boxes with area `U(scale) * height * width` and log-uniform aspect ratio
    (width / height) in `ratio`, and keeps the first that fits. If none fits, falls back to
    the largest centred box whose aspect ratio is clamped to `ratio`.

    Returns:
        int32 scalars `(y, x, h, w)`.
    """
    if not (0.0 < scale[0] <= scale[1]):
        raise ValueError(f"`scale` must satisfy 0 < min <= max, got {scale}.")
    if not (0.0 < ratio[0] <= ratio[1]):
        raise ValueError(f"`ratio` must satisfy 0 < min <= max, got {ratio}.")
    area_seed, ratio_seed, y_seed, x_seed = split_seed(seed, 4)
    h_img = tf.cast(height, tf.float32)
    w_img = tf.cast(width, tf.float32)
    area = h_img * w_img

    target_area = area * tf.random.stateless_uniform(
        [attempts], area_seed, minval=scale[0], maxval=scale[1]
    )
    log_ratio = tf.random.stateless_uniform(
        [attempts], ratio_seed, minval=math.log(ratio[0]), maxval=math.log(ratio[1])
    )
    aspect = tf.exp(log_ratio)
    w = tf.round(tf.sqrt(target_area * aspect))
    h = tf.round(tf.sqrt(target_area / aspect))
    fits = (w > 0) & (h > 0) & (w <= w_img) & (h <= h_img)

    # Fallback: whole image, aspect clamped into `ratio`.
    in_ratio = w_img / h_img
    fb_w = tf.where(
        in_ratio < ratio[0], w_img, tf.where(in_ratio > ratio[1], tf.round(h_img * ratio[1]), w_img)
    )
    fb_h = tf.where(
        in_ratio < ratio[0], tf.round(w_img / ratio[0]), tf.where(in_ratio > ratio[1], h_img, h_img)
    )
    first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)
    any_fits = tf.reduce_any(fits)
    crop_h = tf.cast(tf.where(any_fits, h[first], fb_h), tf.int32)
    crop_w = tf.cast(tf.where(any_fits, w[first], fb_w), tf.int32)

    height = tf.cast(height, tf.int32)
    width = tf.cast(width, tf.int32)
    # A fallback box is centred, like torchvision.
    y = tf.where(any_fits, _randint(height - crop_h, y_seed), (height - crop_h) // 2)
    x = tf.where(any_fits, _randint(width - crop_w, x_seed), (width - crop_w) // 2)
    return y, x, crop_h, crop_w


def random_resized_crop(
    image,
    size,
    scale=(0.08, 1.0),
    ratio=(3.0 / 4.0, 4.0 / 3.0),
    seed=None,
    method="bilinear",
    antialias=True,
):
    """Crops a random box (see `sample_random_resized_crop_box`) and resizes it to `size`.

    Args:
        image: `[H, W, C]` image.
        size: Output `(height, width)` or an int for a square.

    Returns:
        float32 `[size_h, size_w, C]` (0-255 scale if the input was uint8).
    """
    size = _pair(size)
    shape = tf.shape(image)
    y, x, h, w = sample_random_resized_crop_box(shape[0], shape[1], scale, ratio, seed)
    crop = image[y : y + h, x : x + w]
    out = tf.image.resize(crop, size, method=method, antialias=antialias)
    return tf.cast(out, tf.float32)


def resize_shorter_side(image, size, method="bilinear", antialias=True):
    """Resizes `image` so that its shorter side is `size`, keeping the aspect ratio.

    Returns float32 (0-255 scale for uint8 input).
    """
    shape = tf.shape(image)
    h = tf.cast(shape[0], tf.float32)
    w = tf.cast(shape[1], tf.float32)
    factor = tf.cast(size, tf.float32) / tf.minimum(h, w)
    new_h = tf.maximum(tf.cast(tf.round(h * factor), tf.int32), size)
    new_w = tf.maximum(tf.cast(tf.round(w * factor), tf.int32), size)
    out = tf.image.resize(image, tf.stack([new_h, new_w]), method=method, antialias=antialias)
    return tf.cast(out, tf.float32)


def center_crop(image, size):
    """Crops the central `size` (int or `(h, w)`) window of `image` (`[H, W, ...]`)."""
    size_h, size_w = _pair(size)
    shape = tf.shape(image)
    fits = tf.debugging.assert_greater_equal(
        shape[:2], [size_h, size_w], message="center_crop: image is smaller than the crop size"
    )
    # Ordered explicitly: the slice below would otherwise clamp silently before the check runs.
    with tf.control_dependencies([fits]):
        image = tf.identity(image)
    y = (shape[0] - size_h) // 2
    x = (shape[1] - size_w) // 2
    return image[y : y + size_h, x : x + size_w]


# ----------------------------------------------------------------------------------------------
# Normalisation and dtype


def normalize(image, mean=CIFAR10_MEAN, std=CIFAR10_STD):
    """Maps 0-255 pixel values to `(x / 255 - mean) / std` (float32, per channel)."""
    image = tf.cast(image, tf.float32) / 255.0
    mean = tf.constant(mean, tf.float32)
    std = tf.constant(std, tf.float32)
    return (image - mean) / std


def to_uint8(image):
    """Rounds and saturates a 0-255 float image to uint8 (identity for uint8 input)."""
    if image.dtype == tf.uint8:
        return image
    return tf.cast(tf.clip_by_value(tf.round(tf.cast(image, tf.float32)), 0.0, 255.0), tf.uint8)


# ----------------------------------------------------------------------------------------------
# Segmentation (image and mask transformed together)


def random_scale_crop_flip(
    image,
    mask,
    crop_size,
    scale_range=(0.5, 2.0),
    seed=None,
    image_pad_value=0.0,
    ignore_index=255,
    image_method="bilinear",
    flip=True,
):
    """The standard segmentation training transform, applied jointly to image and mask.

    1. Rescale by a factor uniform in `scale_range` (image: `image_method`, mask: nearest
       neighbour, so class ids are never blended).
    2. Pad bottom/right up to `crop_size` where needed: the image with `image_pad_value`
       (a scalar or one value per channel, e.g. the dataset mean on the 0-255 scale), the
       mask with `ignore_index` so that padding never counts in the loss.
    3. Crop a random `crop_size` window (same window for both).
    4. Mirror both horizontally with probability 1/2 (if `flip`).

    Args:
        image: `[H, W, C]` image (any numeric dtype, 0-255 scale).
        mask: `[H, W]` integer class ids.
        crop_size: int or `(h, w)`.

    Returns:
        `(image, mask)`: float32 `[crop_h, crop_w, C]` and `[crop_h, crop_w]` of the mask's
        dtype.
    """
    crop_h, crop_w = _pair(crop_size)
    lo, hi = float(scale_range[0]), float(scale_range[1])
    if not 0.0 < lo <= hi:
        raise ValueError(f"`scale_range` must satisfy 0 < min <= max, got {scale_range}.")
    scale_seed, crop_seed, flip_seed = split_seed(seed, 3)

    shape = tf.shape(image)
    factor = tf.random.stateless_uniform([], scale_seed, minval=lo, maxval=hi)
    new_h = tf.maximum(tf.cast(tf.round(tf.cast(shape[0], tf.float32) * factor), tf.int32), 1)
    new_w = tf.maximum(tf.cast(tf.round(tf.cast(shape[1], tf.float32) * factor), tf.int32), 1)
    new_size = tf.stack([new_h, new_w])
    image = tf.cast(tf.image.resize(image, new_size, method=image_method), tf.float32)
    mask = tf.image.resize(mask[..., None], new_size, method="nearest")[..., 0]

    image, mask = pad_to_size(image, mask, (crop_h, crop_w), image_pad_value, ignore_index)

    shape = tf.shape(mask)
    y_seed, x_seed = split_seed(crop_seed, 2)
    y = _randint(shape[0] - crop_h, y_seed)
    x = _randint(shape[1] - crop_w, x_seed)
    image = image[y : y + crop_h, x : x + crop_w]
    mask = mask[y : y + crop_h, x : x + crop_w]
    if flip:
        do_flip = sample_flip(flip_seed)
        image, mask = _flip_if(image, do_flip), _flip_if(mask, do_flip)
    image = tf.ensure_shape(image, [crop_h, crop_w, None])
    mask = tf.ensure_shape(mask, [crop_h, crop_w])
    return image, mask


def pad_to_size(image, mask, size, image_pad_value=0.0, ignore_index=255):
    """Pads image (float32 result) and mask at the bottom/right to at least `size`.

    Inputs already at least that large are returned unchanged (no crop).
    """
    size_h, size_w = _pair(size)
    shape = tf.shape(mask)
    pad_h = tf.maximum(size_h - shape[0], 0)
    pad_w = tf.maximum(size_w - shape[1], 0)
    paddings = [[0, pad_h], [0, pad_w]]
    pad_value = tf.constant(image_pad_value, tf.float32)
    # tf.pad only takes a scalar fill, so pad (image - fill) with zeros and add fill back;
    # this handles a per-channel fill such as the dataset mean exactly.
    image = tf.cast(image, tf.float32) - pad_value
    image = tf.pad(image, paddings + [[0, 0]]) + pad_value
    mask = tf.pad(mask, paddings, constant_values=tf.cast(ignore_index, mask.dtype))
    return image, mask


def random_joint_flip_left_right(image, mask, seed=None):
    """Mirrors image and mask together with probability 1/2."""
    flag = sample_flip(seed)
    return _flip_if(image, flag), _flip_if(mask, flag)


def random_joint_circular_shift(image, mask, max_shift, seed=None):
    """Rolls image and mask by the same random `[dy, dx]` in `[-max_shift, max_shift]`."""
    shift = sample_shift(max_shift, seed)
    return circular_shift(image, shift), circular_shift(mask, shift)


def _randint(max_inclusive, seed):
    """Scalar int32 uniform in `[0, max_inclusive]` (a tensor bound is fine)."""
    return tf.random.stateless_uniform(
        [], seed, minval=0, maxval=tf.cast(max_inclusive, tf.int32) + 1, dtype=tf.int32
    )


def _pair(size):
    if isinstance(size, numbers.Integral):
        return int(size), int(size)
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f"Expected an int or a (height, width) pair, got {size}.")
    return size
