"""Polyphase split and merge, the shared core of every down- and upsampler here.

Layout: components are stacked on axis 1, `[B, s*s, H/s, W/s, C]`, with component
`k = s*i + j` holding `x[:, i::s, j::s, :]`. This is the order `space_to_depth` uses, moved
to a leading axis so a shared scorer can treat the components as a batch.
"""

from keras import ops

from lps_keras.layers.padding import circular_pad
from lps_keras.layers.reductions import invariant_sum, selection_dtype


def pad_to_multiple(x, stride):
    """Wrap-pads bottom/right so height and width are multiples of `stride`.

    Exact shift invariance needs sizes divisible by stride**num_downsamplers; padding keeps
    odd sizes usable but cannot restore the guarantee.
    """
    h, w = x.shape[1], x.shape[2]
    if h is not None and w is not None:
        pad_h, pad_w = (-h) % stride, (-w) % stride
        if pad_h == 0 and pad_w == 0:
            return x
        return circular_pad(x, ((0, pad_h), (0, pad_w)))
    # Unknown size: pad with a gather whose indices wrap modulo the dynamic size.
    shape = ops.shape(x)
    for axis in (1, 2):
        n = shape[axis]
        padded = n + ops.mod(-n, stride)
        idx = ops.mod(ops.arange(0, padded, dtype="int32"), n)
        x = ops.take(x, idx, axis=axis)
    return x


def polyphase_split(x, stride):
    """Splits NHWC `x` (sizes divisible by `stride`) into `[B, s*s, H/s, W/s, C]`."""
    s = stride
    shape = ops.shape(x)
    h, w, c = shape[1], shape[2], x.shape[3]
    x = ops.reshape(x, (-1, h // s, s, w // s, s, c))
    x = ops.transpose(x, (0, 2, 4, 1, 3, 5))
    return ops.reshape(x, (-1, s * s, h // s, w // s, c))


def polyphase_merge(components, stride):
    """Inverse of `polyphase_split`: `[B, s*s, h, w, C]` to `[B, h*s, w*s, C]`."""
    s = stride
    shape = ops.shape(components)
    h, w, c = shape[2], shape[3], components.shape[4]
    x = ops.reshape(components, (-1, s, s, h, w, c))
    x = ops.transpose(x, (0, 3, 1, 4, 2, 5))
    return ops.reshape(x, (-1, h * s, w * s, c))


def component_norms(x, stride, norm, with_spread=False):
    """Per-sample norms of the `stride**2` polyphase components of NHWC `x`, `[B, s*s]`.

    Computed on `x` itself, without splitting it: a per-pixel reduction over channels (a
    matrix-vector product for l1/l2, which BLAS and XLA both run fast), then a sum over the
    small `[B, H/s, s, W/s, s]` grid. l2 is returned squared (same argmax, no sqrt).

    Returned in float64: the grid sum adds pixels in an order that a circular shift
    changes, so it accumulates in float64 (see `reductions`) and the norms of `roll(x)`
    are a permutation of those of `x`, bit for bit. The per-pixel reduction runs over
    channels only, in the same order at every pixel.

    With `with_spread=True`, also returns the sum over each component's pixels of the
    squared per-pixel norm (float64, `[B, s*s]`): a second statistic, as shift-invariant as
    the norm, that tells apart components whose norms tie (a blur makes the l1 norms of a
    non-negative input's components equal) at the cost of one reduction of a map with no
    channel axis.

    `norm` is `"l2"`, `"l1"`, `"linf"` (largest magnitude) or `"max"`: the largest signed
    value, without abs (the `non_abs_max` criterion of the official APS code); for `"max"`
    the per-pixel term is the largest channel value and the spread sums its square.
    """
    s = stride
    shape = ops.shape(x)
    h, w, c = shape[1], shape[2], x.shape[3]
    # `initial` (0 for magnitudes, -inf for signed values) changes no result and lets an
    # empty batch through eagerly.
    initial = float("-inf") if norm == "max" else 0.0
    if norm in ("linf", "max"):
        # XLA's max skips NaN where TF's returns it: make NaN propagate explicitly, so a
        # component holding a NaN has a NaN norm on every backend and compiler.
        values = ops.abs(x) if norm == "linf" else x
        per_pixel = ops.where(ops.any(ops.isnan(x), axis=-1), float("nan"),
                              ops.max(values, axis=-1, initial=initial))
    else:
        # max(x*x, 0) == x*x. The max is there for XLA on CPU: with 64 channels it runs
        # the per-pixel matvec 1.7-2x slower when a bare multiply feeds it (64x32x32x64:
        # 3.4 against 2.0 ms; abs is as fast as the max), and APS is mostly this pass.
        magnitude = ops.maximum(ops.square(x), 0.0) if norm == "l2" else ops.abs(x)
        per_pixel = ops.matmul(ops.reshape(magnitude, (-1, c)), ops.ones((c, 1), x.dtype))
    grid = ops.reshape(per_pixel, (-1, h // s, s, w // s, s))
    if norm in ("linf", "max"):
        norms = ops.where(ops.any(ops.isnan(grid), axis=(1, 3)), float("nan"),
                          ops.max(grid, axis=(1, 3), initial=initial))
        norms = ops.cast(norms, selection_dtype())  # exact in any order
    else:
        norms = invariant_sum(grid, axis=(1, 3))
    norms = ops.reshape(norms, (-1, s * s))
    if not with_spread:
        return norms
    grid = ops.cast(grid, selection_dtype())
    return norms, ops.reshape(ops.sum(grid * grid, axis=(1, 3)), (-1, s * s))


def gather_component(x, stride, index):
    """`x[b, i::s, j::s]` with `s*i + j = index[b]` for each sample, as one gather of
    channel vectors (reads only the kept pixels; no split of the whole input)."""
    s = stride
    shape = ops.shape(x)
    batch, h, w, c = shape[0], shape[1], shape[2], x.shape[3]
    index = ops.cast(index, "int32")
    i, j = (index // s)[:, None, None], (index % s)[:, None, None]
    b = ops.arange(batch, dtype="int32")[:, None, None]
    rows = ops.arange(h // s, dtype="int32")[None, :, None] * s + i
    cols = ops.arange(w // s, dtype="int32")[None, None, :] * s + j
    flat_index = ops.reshape((b * h + rows) * w + cols, (-1,))
    picked = ops.take(ops.reshape(x, (-1, c)), flat_index, axis=0)
    return ops.reshape(picked, (-1, h // s, w // s, c))


def select_weighted(components, probs):
    """`sum_k probs[:, k] * component_k`, the differentiable selection."""
    weights = ops.cast(probs, components.dtype)[:, :, None, None, None]
    return ops.sum(components * weights, axis=1)


def phase_permutation(shift, stride):
    """Where each component goes under a circular shift of the input.

    Returns `perm` with `perm[k]` = index of the component of `roll(x, shift)` that equals
    (a low-resolution roll of) component `k` of `x`. For stride 2 this is the XOR law of
    docs/design.md, section 2. Used by tests and by users checking their own scorers.
    """
    dy, dx = shift
    s = stride
    perm = []
    for k in range(s * s):
        i, j = divmod(k, s)
        perm.append(((i + dy) % s) * s + (j + dx) % s)
    return perm
