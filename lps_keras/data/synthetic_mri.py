"""`synthetic_mri`: procedurally generated MRI reconstruction pairs (no download needed).

Definition of example `i` (image side `S`, default 64):

1. A phantom magnitude image: a large outer "body" ellipse (intensity 0.1-0.4, semi-axes
   0.3-0.45 S, random rotation, centre within 0.05 S of the image centre) plus 3-10
   filled inner ellipses, each of random intensity in [0.1, 1], semi-axes 0.03-0.2 S,
   rotation and position (centres inside the body ellipse); intensities add where
   ellipses overlap. With `textured=True` (default) the phantom is multiplied by a smooth
   random texture `1 + a * t` (`a` in [0.1, 0.3], `t` a random sum of three low-frequency
   waves with integer frequencies up to 3, values in [-1, 1]).
2. A smooth random phase `phi` (a constant, a linear ramp of at most half a cycle across
   the field of view in each direction, and a quadratic term of at most pi), making the
   image complex: `x = magnitude * exp(i phi)`.
3. k-space `fft2c(x)` (centred, orthonormal; `lps_keras.data.mri`), undersampled by a
   random column mask (`mri.random_masks`: acceleration 4, centre fraction 0.08; a new mask
   per example).
4. Input: the zero-filled magnitude `|ifft2c(k * mask)|`; target: the phantom magnitude.
   Both go to fastMRI's U-Net units (`mri.normalized_pair`): the input instance-normalised
   (its mean and unbiased std), the target normalised with the input's statistics, both
   clamped to `[-6, 6]`, so synthetic and real fastMRI data share the model-side units.

Seeded and prefix-stable: examples are made in chunks of `_CHUNK`; chunk `c` draws every
parameter (phantoms, textures, phases and masks, always for a full chunk) from
`numpy.random.default_rng([seed, c])`, so example `i` depends only on
`(i, image_size, seed, textured)`, and `make_synthetic_mri(200)` is exactly the first 200
examples of `make_synthetic_mri(2000)`. Rendering is vectorised NumPy over a chunk, the
FFTs are TensorFlow ops over the chunk: 2000 examples of 64x64 take about a second.
"""

import numpy as np
import tensorflow as tf

from lps_keras.data import mri

__all__ = ["make_synthetic_mri"]

ACCELERATION = 4
CENTER_FRACTION = 0.08
MAX_INNER_ELLIPSES = 10
_MIN_INNER_ELLIPSES = 3
# Examples rendered at once (bounds peak memory). Changing it changes the data.
_CHUNK = 500


def _ellipse_params(rng, n, lo_axis, hi_axis):
    """Random semi-axes `[n, 2]` (fractions of the side) and rotations `[n]`."""
    axes = rng.uniform(lo_axis, hi_axis, size=(n, 2))
    angle = rng.uniform(0.0, np.pi, size=n)
    return axes, angle


def _draw(rng, n):
    """All random parameters of `n` examples (coordinates as fractions of the side, centred
    on the image centre), as a dict of arrays with a leading axis of length `n`."""
    p = {}
    p["body_center"] = rng.uniform(-0.05, 0.05, size=(n, 2))
    p["body_axes"], p["body_angle"] = _ellipse_params(rng, n, 0.3, 0.45)
    p["body_intensity"] = rng.uniform(0.1, 0.4, size=n)
    k = MAX_INNER_ELLIPSES
    p["count"] = rng.integers(_MIN_INNER_ELLIPSES, k + 1, size=n)
    # Centres: uniform in the unit disk, mapped into 0.8 of the body ellipse.
    radius = np.sqrt(rng.uniform(0.0, 1.0, size=(n, k))) * 0.8
    theta = rng.uniform(0.0, 2.0 * np.pi, size=(n, k))
    p["inner_polar"] = np.stack([radius, theta], -1)
    axes, angle = _ellipse_params(rng, n * k, 0.03, 0.2)
    p["inner_axes"], p["inner_angle"] = axes.reshape(n, k, 2), angle.reshape(n, k)
    p["inner_intensity"] = rng.uniform(0.1, 1.0, size=(n, k))
    p["tex_freqs"] = rng.integers(-3, 4, size=(n, 3, 2))
    p["tex_phases"] = rng.uniform(0.0, 2.0 * np.pi, size=(n, 3))
    p["tex_amplitude"] = rng.uniform(0.1, 0.3, size=n)
    p["phase_const"] = rng.uniform(0.0, 2.0 * np.pi, size=n)
    p["phase_linear"] = rng.uniform(-np.pi, np.pi, size=(n, 2))
    p["phase_quadratic"] = rng.uniform(-np.pi, np.pi, size=n)
    return p


def _head(params, m):
    return {key: value[:m] for key, value in params.items()}


def _fill_ellipse(canvas, yy, xx, center, axes, angle, intensity):
    """Adds `intensity` inside one ellipse per image; arrays have a leading axis `[m]`,
    `yy`/`xx` are `[S, 1]`/`[1, S]` grids in fractions of the side."""
    f32 = np.float32
    dy = yy[None] - center[:, 0, None, None].astype(f32)
    dx = xx[None] - center[:, 1, None, None].astype(f32)
    cos = np.cos(angle).astype(f32)[:, None, None]
    sin = np.sin(angle).astype(f32)[:, None, None]
    u = (dx * cos + dy * sin) / axes[:, 1, None, None].astype(f32)
    v = (dy * cos - dx * sin) / axes[:, 0, None, None].astype(f32)
    inside = u * u + v * v <= 1.0
    canvas += inside * intensity.astype(f32)[:, None, None]


def _render(p, size, textured):
    """Complex64 phantoms `[m, S, S]` and their magnitudes (float32)."""
    m = len(p["count"])
    f32 = np.float32
    grid = ((np.arange(size, dtype=f32) + f32(0.5)) / f32(size) - f32(0.5))
    yy, xx = grid[:, None], grid[None, :]
    canvas = np.zeros((m, size, size), f32)
    _fill_ellipse(canvas, yy, xx, p["body_center"], p["body_axes"], p["body_angle"],
                  p["body_intensity"])
    body_cos, body_sin = np.cos(p["body_angle"]), np.sin(p["body_angle"])
    for slot in range(MAX_INNER_ELLIPSES):
        r, theta = p["inner_polar"][:, slot, 0], p["inner_polar"][:, slot, 1]
        # A point of the unit disk, scaled to the body's semi-axes and rotated with it.
        along, across = r * np.cos(theta) * p["body_axes"][:, 1], r * np.sin(theta) * \
            p["body_axes"][:, 0]
        center = p["body_center"] + np.stack(
            [along * body_sin + across * body_cos, along * body_cos - across * body_sin], -1)
        active = (slot < p["count"]).astype(f32)
        _fill_ellipse(canvas, yy, xx, center, p["inner_axes"][:, slot],
                      p["inner_angle"][:, slot], p["inner_intensity"][:, slot] * active)
    if textured:
        # sin(a y + b x + c) = sin(a y + c) cos(b x) + cos(a y + c) sin(b x): separable.
        two_pi = f32(2.0 * np.pi)
        row = p["tex_freqs"][:, :, 0, None].astype(f32) * grid * two_pi + \
            p["tex_phases"][:, :, None].astype(f32)
        col = p["tex_freqs"][:, :, 1, None].astype(f32) * grid * two_pi
        texture = (np.einsum("nkh,nkw->nhw", np.sin(row), np.cos(col))
                   + np.einsum("nkh,nkw->nhw", np.cos(row), np.sin(col))) / f32(3.0)
        canvas *= 1.0 + p["tex_amplitude"].astype(f32)[:, None, None] * texture
    phase = (p["phase_const"][:, None, None]
             + p["phase_linear"][:, 0, None, None] * yy[None]
             + p["phase_linear"][:, 1, None, None] * xx[None]
             + p["phase_quadratic"][:, None, None] * (yy * yy + xx * xx)[None] * 2.0)
    phantom = canvas * np.exp(1j * phase.astype(f32)).astype(np.complex64)
    return phantom, canvas


def make_synthetic_mri(num_examples, image_size=64, seed=0, textured=True):
    """Generates `synthetic_mri` reconstruction pairs (see the module docstring).

    Prefix-stable: the first `k` examples do not depend on `num_examples`.

    Args:
        num_examples: Number of examples.
        image_size: Side of the square images (>= 16).
        seed: Non-negative integer seed; equal seeds give equal arrays.
        textured: Multiply the phantoms by a smooth random texture.

    Returns:
        `(inputs, targets)`: float32 `[N, S, S, 1]` each, in `[-6, 6]`: the normalised
        zero-filled reconstruction and the normalised phantom magnitude.
    """
    n, size, seed = int(num_examples), int(image_size), int(seed)
    if n < 0:
        raise ValueError(f"`num_examples` must be >= 0, got {num_examples}.")
    if size < 16:
        raise ValueError(f"`image_size` must be >= 16, got {image_size}.")
    if seed < 0:
        raise ValueError(f"`seed` must be a non-negative int, got {seed}.")
    inputs = np.empty((n, size, size, 1), np.float32)
    targets = np.empty((n, size, size, 1), np.float32)
    for chunk, start in enumerate(range(0, n, _CHUNK)):
        m = min(_CHUNK, n - start)
        rng = np.random.default_rng([seed, chunk])
        params = _head(_draw(rng, _CHUNK), m)
        masks = mri.random_masks(rng, _CHUNK, size, ACCELERATION, CENTER_FRACTION)[:m]
        phantom, magnitude = _render(params, size, textured)
        zf = mri.zero_filled(mri.fft2c(tf.constant(phantom)), masks[:, None, :])
        x, y = mri.normalized_pair(zf, magnitude)
        inputs[start : start + m, ..., 0] = x.numpy()
        targets[start : start + m, ..., 0] = y.numpy()
    return inputs, targets
