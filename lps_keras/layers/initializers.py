"""PyTorch's default initialisation of `nn.Conv2d` and `nn.Linear`, as Keras initializers.

PyTorch initialises the weight of a convolution or linear layer with
`kaiming_uniform_(a=sqrt(5))`, which is `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`, and its bias
with `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` too, `fan_in` being the kernel's number of inputs
per output (`in_channels * kh * kw`). The official LPS code keeps these defaults for its
scorers, so `LPSDownsampling2D(scorer_init="torch")` uses `TorchUniform` for them.
"""

import math

import keras

from lps_keras import checks


@keras.saving.register_keras_serializable(package="lps_keras")
class TorchUniform(keras.initializers.RandomUniform):
    """`U(-1/sqrt(fan_in), 1/sqrt(fan_in))`: PyTorch's default for conv/linear weights
    and biases.

    Args:
        fan_in: the kernel's inputs per output (`in_channels * kh * kw` for a conv,
            `in_features` for a dense layer). None (for kernels only) takes it from the
            shape: the product of all but the last axis, Keras' kernel layout (HWIO for
            convolutions, `(in, out)` for dense layers). A bias must be given the fan_in
            of its layer's kernel, since its own shape does not tell it.
        seed: int, `keras.random.SeedGenerator` or None, as for Keras' initializers.

    Example:

    >>> conv = keras.layers.Conv2D(4, 3, kernel_initializer=TorchUniform(),
    ...                            bias_initializer=TorchUniform(fan_in=3 * 3 * 2))
    """

    def __init__(self, fan_in=None, seed=None):
        self.fan_in = checks.check_positive_int(
            "fan_in", fan_in, " (the kernel's inputs per output)", optional=True)
        # The bounds depend on the shape, so they are set per call, not here.
        super().__init__(minval=0.0, maxval=0.0, seed=seed)

    def bound(self, shape):
        """The half-width `1/sqrt(fan_in)` used for a tensor of `shape`."""
        fan_in = self.fan_in
        if fan_in is None:
            shape = tuple(shape)
            if len(shape) < 2:
                raise ValueError(
                    f"TorchUniform() cannot infer fan_in from the shape {shape} (a bias?): "
                    "pass fan_in=<the kernel's inputs per output>."
                )
            fan_in = math.prod(shape[:-1])
        return 1.0 / math.sqrt(fan_in)

    def __call__(self, shape, dtype=None):
        bound = self.bound(shape)
        return keras.random.uniform(shape, minval=-bound, maxval=bound, seed=self.seed,
                                    dtype=dtype)

    def get_config(self):
        return {"fan_in": self.fan_in, "seed": super().get_config()["seed"]}
