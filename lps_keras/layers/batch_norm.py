"""BatchNormalization with PyTorch's moving-variance update.

Keras' `BatchNormalization` updates its moving variance with the biased batch variance
(the one it normalises with); PyTorch's `BatchNorm2d` updates `running_var` with the
unbiased one, `n / (n - 1)` times larger, where `n` is the number of values per channel
(batch x height x width). The normalisation itself is the same in both.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lps_keras")
class TorchBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose moving variance follows PyTorch's update.

    In training, the batch is normalised exactly as by `BatchNormalization`; the moving
    statistics then become, as in `torch.nn.BatchNorm2d` with momentum `1 - momentum`:

        moving_mean     = momentum * moving_mean     + (1 - momentum) * batch_mean
        moving_variance = momentum * moving_variance + (1 - momentum) * batch_var * n/(n-1)

    Use `momentum=0.9, epsilon=1e-5` for PyTorch's defaults. Models built with
    `SamplingSpec(batch_norm="torch")` use it, and so do the paper configs, so that a
    training step updates the same statistics as the papers' code.

    Args:
        **kwargs: as for `keras.layers.BatchNormalization`, except `synchronized=True`
            (the correction uses this replica's batch, which a synchronized update does
            not).

    Example:

    >>> bn = TorchBatchNormalization(momentum=0.9, epsilon=1e-5)
    >>> y = bn(keras.random.normal((4, 8, 8, 3)), training=True)
    """

    def __init__(self, **kwargs):
        if kwargs.get("synchronized"):
            raise ValueError(
                "TorchBatchNormalization does not support `synchronized=True`; use "
                "keras.layers.BatchNormalization(synchronized=True) (Keras' update) for "
                "synchronized statistics.")
        super().__init__(**kwargs)

    def call(self, inputs, training=None, mask=None):
        outputs = super().call(inputs, training=training, mask=mask)
        if training and self.trainable:
            # Keras added (1 - momentum) * biased variance; PyTorch adds the unbiased one.
            x = ops.cast(inputs, "float32")
            axes = [a for a in range(len(inputs.shape)) if a != self.axis % len(inputs.shape)]
            _, variance = ops.moments(x, axes=axes)
            count = ops.cast(ops.size(x), "float32") / ops.cast(ops.shape(x)[self.axis],
                                                                  "float32")
            correction = variance / ops.maximum(count - 1.0, 1.0)
            self.moving_variance.assign(self.moving_variance + ops.cast(
                (1.0 - self.momentum) * correction, self.moving_variance.dtype))
        return outputs
