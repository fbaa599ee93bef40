"""Seeded per-image shift draws and shift application for the evaluation protocols.

Every draw comes from a generator seeded per image: image `i` always gets the same shifts
for a given `seed`, whatever the batch size or the way the data is split into batches.
Public names are re-exported by `lps_keras.metrics`.

Example:

>>> shift_images(np.arange(4).reshape(1, 2, 2), [[0, 1]])[0]
array([[1, 0],
       [3, 2]])
"""

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
_STREAM_EQUIVARIANCE = 2**20  # clear of _STREAM_RING + any shift size


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


def equivariance_shifts(num_images, *, max_shift=16, seed=0, start=0):
    """The circular shifts of the equivariance protocols (`equivariance_nmse`,
    `psnr_shift_change`): one `(dy, dx)` per image, uniform in
    `[-max_shift, max_shift]^2`, as an int array `[N, 2]`.

    (The APS-U code draws `np.random.randint(-max_shift, max_shift)`, i.e. up to
    `max_shift - 1`, from one global generator; here the range is symmetric and the draw
    is per image, so it does not depend on batching.)

    Example:

    >>> equivariance_shifts(3, seed=0).shape
    (3, 2)
    """
    max_shift = check_int("max_shift", max_shift, 0)
    return _per_image_integers(_check_seed(seed), _STREAM_EQUIVARIANCE,
                               check_int("start", start, 0),
                               check_int("num_images", num_images, 0),
                               -max_shift, max_shift + 1, (2,))


def _size_offsets(size, seed, start, count, direction):
    """The shifts of images `start .. start + count - 1` for the curves against shift size:
    `(size, size)` (`direction="diagonal"`) or a seeded random point of the ring
    `max(|dy|, |dx|) == size`, `[count, 2]`."""
    if direction == "diagonal":
        return np.full((count, 2), size, dtype=np.int64)
    ring = _ring_offsets(size)
    pick = _per_image_integers(seed, _STREAM_RING + size, start, count, 0, len(ring), ())
    return ring[pick]


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

