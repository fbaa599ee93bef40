"""Polyphase upsampling (LPU): undo a paired downsampler's selection."""

import keras
from keras import ops

from lps_keras.layers import _validation
from lps_keras.layers.antialias import get_antialias, serialize_antialias
from lps_keras.layers.polyphase import polyphase_merge


@keras.saving.register_keras_serializable(package="lps_keras")
class PolyphaseUpsampling2D(keras.layers.Layer):
    """Places a low-resolution map on the polyphase grid chosen by a paired downsampler.

    `z = depth_to_space(probs ⊗ x)`: with one-hot `probs` the input lands on the phase the
    downsampler kept and the other phases are zero, so `up(down(x))` commutes with circular
    shifts and an encoder-decoder stays shift-equivariant. Soft `probs` (training) spread
    the input over phases with those weights.

    Args:
        stride: int >= 2; must match the paired downsampler.
        antialias: None, a stride-1 layer or `"lowpassN"`/`"ddacN"`: an interpolation
            filter applied after placement, scaled by `stride**2` so a constant map stays
            constant.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: float tensor `[B, h, w, C]`.
        probs: `[B, stride**2]` from the paired downsampler (`return_probs=True`), for
            the same batch. A batch size different from that of `inputs` raises a
            ValueError naming `probs` when both are known statically; with dynamic batch
            sizes it surfaces as a shape error of the product (keras.ops has no graph
            assertion).

    Inputs of height or width 0 are rejected.

    Example:

    >>> down = APSDownsampling2D(stride=2, return_probs=True)
    >>> x = keras.random.normal((2, 8, 8, 3))
    >>> y, probs = down(x)
    >>> z = PolyphaseUpsampling2D(stride=2)(y, probs)
    >>> tuple(z.shape)
    (2, 8, 8, 3)
    """

    def __init__(self, stride=2, antialias=None, **kwargs):
        super().__init__(**kwargs)
        self.stride = _validation.check_stride(stride)
        self.antialias = serialize_antialias(antialias)
        self.antialias_layer = get_antialias(antialias, name="antialias")

    def build(self, inputs_shape, probs_shape=None):
        _validation.check_rank4(self, inputs_shape)
        if probs_shape is not None:
            _validation.check_probs_batch(self, inputs_shape, probs_shape)
        if self.antialias_layer is not None:
            self.antialias_layer.build(self.compute_output_shape(inputs_shape))

    def call(self, inputs, probs):
        _validation.check_float_dtype(self, inputs.dtype)
        _validation.check_nonempty(self, inputs.shape)
        k = self.stride * self.stride
        if len(probs.shape) != 2 or probs.shape[1] != k:
            raise ValueError(
                f"PolyphaseUpsampling2D(stride={self.stride}) expects `probs` of shape "
                f"[batch, {k}] from a paired downsampler with the same stride; got shape "
                f"{tuple(probs.shape)}."
            )
        _validation.check_probs_batch(self, inputs.shape, probs.shape)
        weights = ops.cast(probs, inputs.dtype)[:, :, None, None, None]
        outputs = polyphase_merge(weights * inputs[:, None], self.stride)
        if self.antialias_layer is not None:
            outputs = self.antialias_layer(outputs) * float(k)
        return outputs

    def compute_output_shape(self, inputs_shape, probs_shape=None):
        _validation.check_nonempty(self, inputs_shape)
        b, h, w, c = inputs_shape
        s = self.stride
        return (b, None if h is None else h * s, None if w is None else w * s, c)

    def get_config(self):
        config = super().get_config()
        config.update({"stride": self.stride, "antialias": self.antialias})
        return config
