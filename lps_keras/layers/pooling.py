"""Global average pooling that a circular shift leaves bitwise unchanged."""

import keras
from keras import ops

from lps_keras.layers import _validation
from lps_keras.layers.reductions import invariant_mean


@keras.saving.register_keras_serializable(package="lps_keras")
class InvariantGlobalAveragePooling2D(keras.layers.Layer):
    """Global average pooling accumulated in float64, cast back to the compute dtype.

    A circular shift of a feature map permutes its pixels, and a float32 mean adds them in
    another order, so `keras.layers.GlobalAveragePooling2D` can return a different last bit
    for a shifted input. Here the mean accumulates in float64 (see `reductions`): for a
    feature map and its circular shift, the pooled float32 values are bitwise equal unless
    the two float64 sums straddle a float32 rounding boundary (a chance of order 1e-9 per
    value). A classifier whose features before the pool are exactly shift-equivariant then
    gives bitwise identical logits for shifted inputs.

    Args:
        keepdims: if True, returns `[B, 1, 1, C]` instead of `[B, C]`.
        **kwargs: base layer arguments.

    Example:

    >>> pool = InvariantGlobalAveragePooling2D()
    >>> tuple(pool(keras.random.normal((2, 4, 4, 8))).shape)
    (2, 8)
    """

    def __init__(self, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.keepdims = bool(keepdims)

    def build(self, input_shape):
        _validation.check_rank4(self, input_shape)

    def call(self, inputs):
        _validation.check_nonempty(self, inputs.shape)
        return ops.cast(invariant_mean(inputs, axis=(1, 2), keepdims=self.keepdims),
                        self.compute_dtype)

    def compute_output_shape(self, input_shape):
        b, _, _, c = input_shape
        return (b, 1, 1, c) if self.keepdims else (b, c)

    def get_config(self):
        config = super().get_config()
        config.update({"keepdims": self.keepdims})
        return config
