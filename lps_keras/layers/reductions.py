"""Sums and means whose result does not depend on the order of their terms.

A circular shift of the input permutes the pixels of every feature map (and the polyphase
components with them). Float addition is not associative, so a float32 sum over pixels
computed after a shift adds the same terms in another order and can differ in its last
bits. Two components whose scores differ by less than that (near-ties happen at random
initialisation) can then swap ranks, and the selection stops commuting with the shift.

Every reduction on the way to a selection, and the global pool of a classifier, therefore
accumulates here in float64. A float32 term has a 24-bit significand; float64 keeps 53, so
the float64 sums of two orderings of the same float32 terms agree to about 1e-16 relative.
Scores are then compared in float64 (`SELECTION_DTYPE`), where such differences never
decide a ranking short of an exact mathematical tie, and values cast back to float32 (a
pooled feature) come out bitwise equal unless the float64 sums straddle a float32
rounding boundary (a chance of order 1e-9 per value).

Sums over the few polyphase components (in the `attention` and `graph` scorers) add the
terms in sorted order instead (`set_sum`): exactly order-free at negligible cost.

What order-free sums cannot fix: an exact tie (an all-zero scorer feature map, l1 norms
after a blur, identical components) has no winner. The downsamplers break such ties with a
second statistic that also follows the shift (`downsampling.argmax_with_tiebreak`); only
components tied in that too (identical ones, as in a constant image) go to the lowest
index, which a shift can change.

Float64 inputs are summed in float64 as they are: there is no wider type to accumulate in.

`float32_selection()` traces a model with float32 in place of float64 (for TFLite, whose
builtin ops have no float64 kernels; see `lps_keras.export_formats`). It is for export
only: the order-free argument above then holds to float32 precision, not float64.

JAX: float64 exists only with `jax_enable_x64` (`JAX_ENABLE_X64=1`, or
`jax.config.update("jax_enable_x64", True)` before building a model); without it JAX turns
every float64 into float32 (with a warning), so these sums stay float32 and the guarantee
falls back to "equal up to float32 rounding". `x64_available()` tells which case holds.
"""

import contextlib

import keras
from keras import ops

SELECTION_DTYPE = "float64"
_dtype_override = []


def selection_dtype():
    """The accumulation and comparison dtype: `SELECTION_DTYPE` (float64), or float32
    inside `float32_selection()`."""
    return _dtype_override[-1] if _dtype_override else SELECTION_DTYPE


@contextlib.contextmanager
def float32_selection():
    """Within this block, layers traced or called accumulate and compare in float32.

    For exporting to runtimes without float64 (TFLite builtins). A circular shift then
    changes float32 sums in their last bits, so a near-tie of two components (scores within
    float32 rounding) can swap ranks and logits of shifted images agree only to float32
    rounding; exact ties are still broken as in float64. Not thread-safe: trace in one
    thread."""
    _dtype_override.append("float32")
    try:
        yield
    finally:
        _dtype_override.pop()


def invariant_sum(x, axis=None, keepdims=False):
    """`sum(x, axis)` accumulated in float64 (`selection_dtype()`); returns float64."""
    return ops.sum(ops.cast(x, selection_dtype()), axis=axis, keepdims=keepdims)


def invariant_mean(x, axis=None, keepdims=False):
    """`mean(x, axis)` accumulated in float64 (`selection_dtype()`); returns float64."""
    return mean(ops.cast(x, selection_dtype()), axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    """The mean of `x` over `axis` in `x`'s own dtype: its sum divided by the count.

    Not `ops.mean`: Keras (3.15) computes it on JAX in `result_type(x.dtype, "float32")`,
    which rounds float64 down to float32; and on TensorFlow a float64 spatial mean becomes
    an ONNX `GlobalAveragePool`, which onnxruntime implements for float32 only, so Keras'
    own `model.export(format="onnx")` wrote models onnxruntime could not load. A sum and a
    division export as `ReduceSum` and `Div`."""
    shape = ops.shape(x)
    axes = range(len(shape)) if axis is None else (axis,) if isinstance(axis, int) else axis
    count = 1
    for a in axes:
        count = count * shape[a]
    return ops.sum(x, axis=axis, keepdims=keepdims) / ops.cast(count, x.dtype)


def x64_available():
    """Whether float64 is a real float64 on this backend (False only on JAX without x64)."""
    if keras.backend.backend() != "jax":
        return True
    import jax

    return bool(jax.config.jax_enable_x64)


def set_sum(x, axis, keepdims=False):
    """Sum over a short axis (the polyphase components) that is exactly order-free.

    The terms are sorted along `axis` first, so any permutation of them gives the same
    result, bit for bit, in any dtype. Sorting costs little for the 4 or 9 components that
    set-mixing scorers sum over; use `invariant_sum` for long (pixel) axes.
    """
    x = ops.moveaxis(x, axis, -1)
    total = ops.sum(ops.sort(x, axis=-1), axis=-1)
    return ops.expand_dims(total, axis) if keepdims else total


def set_softmax(logits, axis=-1):
    """Softmax over a short axis whose normaliser is a `set_sum` (exactly order-free)."""
    # `initial=-inf` changes no value and lets an empty batch through in eager mode.
    e = ops.exp(logits - ops.max(logits, axis=axis, keepdims=True, initial=float("-inf")))
    return e / set_sum(e, axis=axis, keepdims=True)
