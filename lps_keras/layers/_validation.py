"""Layer-specific argument checks, with messages that say what to do.

The generic checks live in `lps_keras.checks` and are re-exported here.
"""

from lps_keras.checks import (  # noqa: F401  (re-exported for the layers)
    check_choice,
    check_int,
    check_positive_int,
    check_positive_number,
    is_int,
)

PADDING_MODES = ("circular", "zeros", "reflect", "symmetric")


def check_stride(stride):
    if not is_int(stride) or stride < 2:
        raise ValueError(
            f"`stride` must be an int >= 2 (it subsamples by stride x stride); got {stride!r}. "
            "For stride 1 simply leave the downsampler out."
        )
    return int(stride)


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
