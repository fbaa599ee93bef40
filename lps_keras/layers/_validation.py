"""Layer-specific argument checks, with messages that say what to do.

The generic checks live in `lps_keras.checks` and are re-exported here.
"""

from lps_keras.checks import (  # noqa: F401  (re-exported for the layers)
    check_choice,
    check_int,
    check_positive_int,
    check_positive_number,
    is_int,
    is_number,
)

PADDING_MODES = ("circular", "zeros", "reflect", "symmetric")


def check_stride(stride):
    if not is_int(stride) or stride < 2:
        raise ValueError(
            f"`stride` must be an int >= 2 (it subsamples by stride x stride); got {stride!r}. "
            "For stride 1 simply leave the downsampler out."
        )
    return int(stride)


def check_unit_interval(name, value):
    """`float(value)` for a number in `[0, 1]` (a moving-average momentum)."""
    if not is_number(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"`{name}` must be a number from 0 to 1; got {value!r}.")
    return float(value)


def check_int_in_range(name, value, low, high):
    """`int(value)` for an int (Python or NumPy, not bool) in `[low, high]`."""
    if not is_int(value) or not low <= value <= high:
        raise ValueError(f"`{name}` must be an int from {low} to {high}; got {value!r}.")
    return int(value)


def check_nonempty(layer, input_shape, what="input"):
    """Rejects a statically known height or width of 0 (the batch may be 0).

    Unknown (`None`) sizes pass: the check is static, made when the shape is known (at
    build time, and at call time for tensors with a static shape)."""
    if len(input_shape) == 4 and (input_shape[1] == 0 or input_shape[2] == 0):
        raise ValueError(
            f"{layer.__class__.__name__} got an empty {what} of shape "
            f"{tuple(input_shape)}: height and width must be at least 1. Drop empty images "
            "(or crop/resize them to a non-zero size) before this layer."
        )


def check_probs_batch(layer, inputs_shape, probs_shape):
    """Rejects `probs` whose batch size differs from that of `inputs` when both are
    statically known (a dynamic mismatch surfaces as a shape error of the product)."""
    batch, probs_batch = inputs_shape[0], probs_shape[0]
    if batch is not None and probs_batch is not None and batch != probs_batch:
        raise ValueError(
            f"{layer.__class__.__name__} got `probs` with batch size {probs_batch} for "
            f"`inputs` with batch size {batch} (shapes {tuple(probs_shape)} and "
            f"{tuple(inputs_shape)}); pass the `probs` the paired downsampler returned for "
            "this same batch."
        )


def check_rank4(layer, input_shape, what="input"):
    if len(input_shape) != 4:
        raise ValueError(
            f"{layer.__class__.__name__} expects a rank-4 NHWC {what} "
            f"[batch, height, width, channels]; got shape {tuple(input_shape)} "
            f"(rank {len(input_shape)})."
        )
    if input_shape[-1] is None:
        raise ValueError(
            f"{layer.__class__.__name__} needs a known channel dimension; got shape "
            f"{tuple(input_shape)}."
        )
    check_nonempty(layer, input_shape, what)


def check_float_dtype(layer, dtype):
    name = getattr(dtype, "name", str(dtype))
    if "float" not in name:
        raise ValueError(
            f"{layer.__class__.__name__} expects a floating-point input; got dtype {name}. "
            "Cast images with `keras.ops.cast(x, 'float32')` (and normalise them) first."
        )


def scoring_dtype(dtype):
    """Dtype for norms, logits and softmax: float32, or float64 for float64 inputs.

    Half precision is too coarse to rank components reliably; float64 is kept as is.
    """
    name = getattr(dtype, "name", str(dtype))
    return "float64" if name == "float64" else "float32"
