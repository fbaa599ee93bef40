"""Circular (wrap-around) padding.

Circular padding is what makes a convolution commute with circular shifts, so every
spatial op in a shift-invariant network pads this way.
"""

import keras
from keras import ops

from lps_keras.layers import _validation


def _normalize_padding(padding):
    """Returns ((top, bottom), (left, right)) from an int, a pair or a pair of pairs."""
    is_int = _validation.is_int  # Python or NumPy ints, never bools
    if is_int(padding):
        pads = ((padding, padding), (padding, padding))
    elif _is_pair(padding) and all(is_int(p) for p in padding):
        pads = ((padding[0], padding[0]), (padding[1], padding[1]))
    elif _is_pair(padding) and all(_is_pair(p) for p in padding):
        pads = (tuple(padding[0]), tuple(padding[1]))
    else:
        raise ValueError(
            "`padding` must be an int, a pair (pad_h, pad_w) or a pair of pairs "
            f"((top, bottom), (left, right)); got {padding!r}."
        )
    for p in pads[0] + pads[1]:
        if not is_int(p) or p < 0:
            raise ValueError(f"`padding` values must be non-negative ints; got {padding!r}.")
    return tuple(tuple(int(v) for v in p) for p in pads)


def _is_pair(value):
    return isinstance(value, (tuple, list)) and len(value) == 2


def _wrap_axis(x, before, after, axis):
    """Wrap-pads one spatial axis; works for widths larger than the axis."""
    if before == 0 and after == 0:
        return x
    size = x.shape[axis]
    if size is not None and before <= size and after <= size:
        # Two slices and a concat are cheaper than a gather when the pad fits.
        parts = []
        if before:
            parts.append(_slice_axis(x, size - before, size, axis))
        parts.append(x)
        if after:
            parts.append(_slice_axis(x, 0, after, axis))
        return ops.concatenate(parts, axis=axis)
    # General case (wide pads or unknown size): gather with indices taken modulo the size.
    n = ops.shape(x)[axis]
    idx = ops.mod(ops.arange(-before, n + after, dtype="int32"), n)
    return ops.take(x, idx, axis=axis)


def _slice_axis(x, start, stop, axis):
    index = [slice(None)] * len(x.shape)
    index[axis] = slice(start, stop)
    return x[tuple(index)]


def circular_pad(x, padding):
    """Wrap-pads the two spatial axes of an NHWC tensor.

    Args:
        x: tensor of shape `[B, H, W, C]`.
        padding: int, `(pad_h, pad_w)` or `((top, bottom), (left, right))`.
    """
    (top, bottom), (left, right) = _normalize_padding(padding)
    x = _wrap_axis(x, top, bottom, axis=1)
    return _wrap_axis(x, left, right, axis=2)


def pad2d(x, padding, mode):
    """Pads NHWC `x` spatially with `mode` in circular, zeros, reflect, symmetric."""
    (top, bottom), (left, right) = _normalize_padding(padding)
    if mode == "circular":
        return circular_pad(x, padding)
    pad_width = [(0, 0), (top, bottom), (left, right), (0, 0)]
    if mode == "zeros":
        return ops.pad(x, pad_width, mode="constant")
    if mode in ("reflect", "symmetric"):
        return ops.pad(x, pad_width, mode=mode)
    raise ValueError(
        f"`padding_mode` must be one of {_validation.PADDING_MODES}; got {mode!r}."
    )


@keras.saving.register_keras_serializable(package="lps_keras")
class CircularPad2D(keras.layers.Layer):
    """Pads the spatial axes of an NHWC tensor by wrapping around (circular padding).

    Any width is allowed, also wider than the input (the input is tiled as often as
    needed), and the spatial size may be unknown (`None`).

    Args:
        padding: int, `(pad_h, pad_w)` or `((top, bottom), (left, right))`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Example:

    >>> x = keras.ops.reshape(keras.ops.arange(9, dtype="float32"), (1, 3, 3, 1))
    >>> y = CircularPad2D(1)(x)
    >>> tuple(y.shape)
    (1, 5, 5, 1)
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = _normalize_padding(padding)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def call(self, inputs):
        _validation.check_nonempty(self, inputs.shape)
        return circular_pad(inputs, self.padding)

    def compute_output_shape(self, input_shape):
        _validation.check_nonempty(self, input_shape)
        (top, bottom), (left, right) = self.padding
        b, h, w, c = input_shape
        return (
            b,
            None if h is None else h + top + bottom,
            None if w is None else w + left + right,
            c,
        )

    def get_config(self):
        config = super().get_config()
        config.update({"padding": self.padding})
        return config
