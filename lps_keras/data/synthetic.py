"""Procedurally generated shape datasets (no download needed).

`synthetic_shapes` is a 10-class classification set: one filled shape per image, drawn at a
random position (wrapping around the border, so the data distribution is itself invariant to
circular shifts), random size, random colour, on a random textured background (smooth
low-frequency noise or stripes). Colour and texture are drawn independently of the label, so
only the geometry identifies the class. `synthetic_shapes_seg` is the segmentation twin: 1-3
shapes per image and a per-pixel mask (0 = background, `class_id + 1` = shape).

Both generators are prefix-stable: images are made in fixed chunks of `_CHUNK` images, and
chunk `c` draws everything from `numpy.random.default_rng([seed, c])` (its pixel noise from
`default_rng([seed, c, 1])`), always drawing the parameters of a full chunk. So image `i`
depends only on `(i, image_size, seed)`: `make_synthetic_shapes(200)` is exactly the first
200 examples of `make_synthetic_shapes(1000)`, and a run that trains or evaluates on fewer
examples sees a prefix of the same data. Rendering is vectorised over images (mask
arithmetic on coordinate grids): 10k images of 32x32 take one to two seconds.
"""

import numpy as np

SHAPE_NAMES = (
    "square",
    "disk",
    "triangle",
    "plus",
    "ring",
    "horizontal_bar",
    "vertical_bar",
    "diamond",
    "x_cross",
    "l_shape",
)
NUM_SHAPE_CLASSES = len(SHAPE_NAMES)

# Shape extent (full width, before aspect jitter) as a fraction of the image side. At 32x32
# this is 10-18 px: large enough that thin strokes stay >= 2 px wide.
_CLS_SIZE_RANGE = (0.3, 0.55)
_SEG_SIZE_RANGE = (0.2, 0.4)
# Independent jitter of the two half-axes; bars (aspect 0.35) stay far from squares (aspect 1).
_ASPECT_JITTER = (0.87, 1.15)
# Minimum per-channel distance between a shape's colour and its background's base colour.
_MIN_CONTRAST = 96.0
_PIXEL_NOISE_STD = 4.0
# Images rendered at once (bounds peak memory to a few tens of MB). A multiple of the number
# of classes, so the label blocks below never straddle chunks. Changing it changes the data.
_CHUNK = 1000


def _shape_mask(shape_id, u, v):
    """Boolean mask of shape `shape_id` in normalised coordinates.

    Args:
        shape_id: Python int in `[0, 10)`.
        u: float array, row offset from the shape centre divided by the half-height
            (positive downwards); the shape lives in `|u| <= 1`.
        v: float array, column offset divided by the half-width.
    """
    au, av = np.abs(u), np.abs(v)
    inside_box = np.maximum(au, av) <= 1.0
    name = SHAPE_NAMES[shape_id]
    if name == "square":
        return inside_box
    if name == "disk":
        return u * u + v * v <= 1.0
    if name == "triangle":
        # Apex at the top (u = -1), base at the bottom (u = +1).
        return (au <= 1.0) & (av <= (u + 1.0) * 0.5)
    if name == "plus":
        t = 0.3
        return inside_box & ((au <= t) | (av <= t))
    if name == "ring":
        r2 = u * u + v * v
        return (r2 <= 1.0) & (r2 >= 0.55**2)
    if name == "horizontal_bar":
        return (au <= 0.35) & (av <= 1.0)
    if name == "vertical_bar":
        return (av <= 0.35) & (au <= 1.0)
    if name == "diamond":
        return au + av <= 1.0
    if name == "x_cross":
        # Two diagonal strokes of half-width 0.25 (measured perpendicular to the stroke).
        t = 0.25 * np.sqrt(2.0)
        return inside_box & ((np.abs(u - v) <= t) | (np.abs(u + v) <= t))
    if name == "l_shape":
        t = 0.6  # stroke width in normalised units (30% of the extent)
        return inside_box & ((v <= -1.0 + t) | (u >= 1.0 - t))
    raise ValueError(f"Unknown shape id {shape_id}.")


def _wrapped_offsets(size, centers):
    """Signed torus offsets `pixel - centre` in `[-size/2, size/2)`, shape `[n, size]`."""
    grid = np.arange(size, dtype=np.float32)[None, :]
    half = size / 2.0
    return np.mod(grid - centers[:, None] + half, size) - half


def _draw_placements(rng, n, image_size, size_range):
    """Centre, half-axes and contrasting colour of one shape in each of `n` images."""
    centers = rng.uniform(0.0, image_size, size=(n, 2)).astype(np.float32)
    extent = rng.uniform(*size_range, size=n) * image_size
    half_axes = (extent[:, None] / 2.0) * rng.uniform(*_ASPECT_JITTER, size=(n, 2))
    # Per channel, move at least _MIN_CONTRAST away from the background base colour (mod 256)
    # so the shape is always visible, yet its colour carries no class information.
    offsets = 128.0 + rng.uniform(-(128.0 - _MIN_CONTRAST), 128.0 - _MIN_CONTRAST, size=(n, 3))
    return centers, half_axes.astype(np.float32), offsets.astype(np.float32)


def _render_masks(shape_ids, centers, half_axes, image_size):
    """Per-image boolean masks `[n, H, W]` for one shape per image."""
    dy = _wrapped_offsets(image_size, centers[:, 0]) / half_axes[:, :1]
    dx = _wrapped_offsets(image_size, centers[:, 1]) / half_axes[:, 1:]
    u = np.broadcast_to(dy[:, :, None], (len(shape_ids), image_size, image_size))
    v = np.broadcast_to(dx[:, None, :], (len(shape_ids), image_size, image_size))
    masks = np.zeros(u.shape, dtype=bool)
    for shape_id in range(NUM_SHAPE_CLASSES):
        sel = shape_ids == shape_id
        if np.any(sel):
            masks[sel] = _shape_mask(shape_id, u[sel], v[sel])
    return masks


def _draw_backgrounds(rng, n):
    """Random parameters of `n` backgrounds (see `_render_backgrounds`), as a dict of arrays
    with a leading axis of length `n`."""
    base = rng.uniform(0.0, 255.0, size=(n, 3)).astype(np.float32)
    stripes = rng.random(n) < 0.5
    kmax = np.where(stripes, 4, 3)[:, None, None]
    freqs = np.floor(rng.random((n, 3, 2)) * (2 * kmax + 1)) - kmax  # integers in [-k, k]
    weights = rng.uniform(0.3, 1.0, size=(n, 3))
    weights[stripes, 1:] = 0.0
    weights /= weights.sum(axis=1, keepdims=True)
    phases = rng.uniform(0.0, 2.0 * np.pi, size=(n, 3))
    amplitude = rng.uniform(6.0, 24.0, size=(n, 1)) * rng.uniform(0.5, 1.0, size=(n, 3))
    return {"base": base, "freqs": freqs, "weights": weights, "phases": phases,
            "amplitude": amplitude.astype(np.float32)}


def _head(params, m):
    """The first `m` entries of every array of a parameter dict or tuple."""
    if isinstance(params, dict):
        return {k: v[:m] for k, v in params.items()}
    return tuple(v[:m] for v in params)


def _render_backgrounds(params, image_size):
    """Base colours `[n, 3]` and textured backgrounds `[n, 3, H, W]` (float32, 0-255 scale).

    Rendering works on channel planes (`[n, 3, H, W]`): broadcasting over a trailing axis of
    length 3 is several times slower in NumPy. `_finish` transposes to NHWC once, in uint8.

    Textures are sums of sinusoids with integer frequencies, so they tile the torus
    seamlessly (a circularly shifted image is another plausible sample). Half the images get
    smooth low-frequency noise (3 waves, frequencies up to 3), half get stripes (one wave,
    frequencies up to 4, any orientation). The texture amplitude (<= 24) stays well below
    the shape contrast (>= 96 per channel), so textures never look like shape edges.
    """
    base, freqs, weights = params["base"], params["freqs"], params["weights"]
    phases, amplitude = params["phases"], params["amplitude"]
    grid = np.arange(image_size, dtype=np.float32) * np.float32(2.0 * np.pi / image_size)
    # sin(a*y + b*x + p) = sin(a*y + p) cos(b*x) + cos(a*y + p) sin(b*x): two separable
    # outer products per wave instead of a sine per pixel.
    row_arg = freqs[:, :, 0, None].astype(np.float32) * grid + phases[:, :, None].astype(np.float32)
    col_arg = freqs[:, :, 1, None].astype(np.float32) * grid
    w = weights[:, :, None].astype(np.float32)
    texture = np.einsum("nkh,nkw->nhw", w * np.sin(row_arg), np.cos(col_arg)) + np.einsum(
        "nkh,nkw->nhw", w * np.cos(row_arg), np.sin(col_arg)
    )
    backgrounds = base[:, :, None, None] + texture[:, None] * amplitude[:, :, None, None]
    return base, backgrounds.astype(np.float32, copy=False)


def _finish(rng, canvas):
    """Adds pixel noise to a `[n, 3, H, W]` float canvas; returns uint8 `[n, H, W, 3]`.

    The noise of image `i` is bytes `i * 3HW .. (i + 1) * 3HW - 1` of `rng`'s byte stream,
    so a smaller canvas gets a prefix of a larger one's noise.
    """
    # Uniform noise with std _PIXEL_NOISE_STD, from raw random bytes: several times cheaper
    # than Gaussian draws, and the exact noise law does not matter here.
    noise = np.frombuffer(rng.bytes(canvas.size), dtype=np.uint8).reshape(canvas.shape)
    scale = np.float32(_PIXEL_NOISE_STD * np.sqrt(3.0) / 127.5)
    canvas += (noise.astype(np.float32) - np.float32(127.5)) * scale
    np.rint(canvas, out=canvas)
    np.clip(canvas, 0.0, 255.0, out=canvas)
    return canvas.astype(np.uint8).transpose(0, 2, 3, 1)


def _check_common(num_examples, image_size):
    if int(num_examples) < 0:
        raise ValueError(f"`num_examples` must be >= 0, got {num_examples}.")
    if int(image_size) < 8:
        raise ValueError(f"`image_size` must be >= 8, got {image_size}.")


def make_synthetic_shapes(num_examples, image_size=32, seed=0):
    """Generates the `synthetic_shapes` classification dataset.

    Labels are balanced in every prefix (counts differ by at most one): each block of 10
    consecutive images holds every class once, in random order. Class names are in
    `SHAPE_NAMES`. Prefix-stable: the first `k` examples do not depend on `num_examples`.

    Args:
        num_examples: Number of images.
        image_size: Side of the square images (shape sizes scale with it).
        seed: Non-negative integer seed; equal seeds give equal arrays.

    Returns:
        `(images, labels)`: uint8 `[N, image_size, image_size, 3]` and int32 `[N]`.
    """
    _check_common(num_examples, image_size)
    n, size = int(num_examples), int(image_size)
    labels = np.empty(n, dtype=np.int32)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for chunk, start in enumerate(range(0, n, _CHUNK)):
        m = min(_CHUNK, n - start)
        rng, noise_rng = _chunk_rngs(seed, chunk)
        # Blocks of NUM_SHAPE_CLASSES consecutive images hold each class once, in random
        # order: every prefix is balanced to within one image per class.
        blocks = np.tile(np.arange(NUM_SHAPE_CLASSES), (_CHUNK // NUM_SHAPE_CLASSES, 1))
        ids = rng.permuted(blocks, axis=1).reshape(-1)[:m].astype(np.int32)
        background = _head(_draw_backgrounds(rng, _CHUNK), m)
        centers, half_axes, offsets = _head(
            _draw_placements(rng, _CHUNK, size, _CLS_SIZE_RANGE), m)
        base, canvas = _render_backgrounds(background, size)
        colours = np.mod(base + offsets, 256.0)
        masks = _render_masks(ids, centers, half_axes, size)
        canvas = np.where(masks[:, None], colours[:, :, None, None], canvas)
        labels[start : start + m] = ids
        images[start : start + m] = _finish(noise_rng, canvas)
    return images, labels


def _chunk_rngs(seed, chunk):
    """The parameter and pixel-noise generators of chunk `chunk` (see the module doc)."""
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"`seed` must be a non-negative int, got {seed}.")
    return np.random.default_rng([seed, chunk]), np.random.default_rng([seed, chunk, 1])


def make_synthetic_shapes_seg(num_examples, image_size=64, seed=0, num_shapes=(1, 3)):
    """Generates the `synthetic_shapes_seg` segmentation dataset.

    Each image holds between `num_shapes[0]` and `num_shapes[1]` shapes (inclusive) of
    uniformly drawn classes; later shapes are painted over earlier ones, and the mask follows
    the painting order, so it always labels the visible shape. Prefix-stable: the first `k`
    examples do not depend on `num_examples` (for equal `image_size`, `seed`, `num_shapes`).

    Args:
        num_examples: Number of images.
        image_size: Side of the square images.
        seed: Non-negative integer seed; equal seeds give equal arrays.
        num_shapes: `(min, max)` shapes per image, or a single int.

    Returns:
        `(images, masks)`: uint8 `[N, H, W, 3]` and uint8 `[N, H, W]` with 0 for background
        and `class_id + 1` (1-10) for shape pixels, i.e. 11 classes in total.
    """
    _check_common(num_examples, image_size)
    if isinstance(num_shapes, int):
        num_shapes = (num_shapes, num_shapes)
    lo, hi = (int(k) for k in num_shapes)
    if not 0 <= lo <= hi:
        raise ValueError(f"`num_shapes` must be (min, max) with 0 <= min <= max, got {num_shapes}.")
    n, size = int(num_examples), int(image_size)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=np.uint8)
    for chunk, start in enumerate(range(0, n, _CHUNK)):
        m = min(_CHUNK, n - start)
        rng, noise_rng = _chunk_rngs(seed, chunk)
        base, canvas = _render_backgrounds(_head(_draw_backgrounds(rng, _CHUNK), m), size)
        counts = rng.integers(lo, hi + 1, size=_CHUNK)[:m]
        seg = np.zeros((m, size, size), dtype=np.uint8)
        for slot in range(hi):
            ids = rng.integers(0, NUM_SHAPE_CLASSES, size=_CHUNK)[:m]
            centers, half_axes, offsets = _head(
                _draw_placements(rng, _CHUNK, size, _SEG_SIZE_RANGE), m)
            colours = np.mod(base + offsets, 256.0)
            drawn = _render_masks(ids, centers, half_axes, size) & (slot < counts)[:, None, None]
            canvas = np.where(drawn[:, None], colours[:, :, None, None], canvas)
            seg = np.where(drawn, (ids + 1).astype(np.uint8)[:, None, None], seg)
        images[start : start + m] = _finish(noise_rng, canvas)
        masks[start : start + m] = seg
    return images, masks
