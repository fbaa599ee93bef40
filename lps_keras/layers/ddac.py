"""DDAC: a learned, content-adaptive blur (Zou et al., "Delving Deeper into Anti-aliasing")."""

import keras
from keras import ops

from lps_keras.layers import _validation
from lps_keras.layers.lowpass import filter_padding
from lps_keras.layers.padding import pad2d

SOFTMAX_MODES = ("per_group", "joint")


@keras.saving.register_keras_serializable(package="lps_keras")
class DDAC2D(keras.layers.Layer):
    """Content-adaptive low-pass filter, stride 1.

    A `kernel_size x kernel_size` convolution followed by batch normalisation predicts, at
    every pixel and for each of `groups` channel groups, `kernel_size**2` logits; a softmax
    turns them into a normalised blur kernel that is applied to that pixel's neighbourhood.
    With circular padding the layer commutes with circular shifts.

    Official code (raymondyeh07/learnable_polyphase_sampling, `layers/lowpass_filter.py`,
    class `DDAC`, after Zou et al.): one softmax over all `groups * kernel_size**2` logits
    of a pixel jointly, and BatchNorm with PyTorch's eps 1e-5 and momentum 0.1. The
    official setting is therefore `softmax="joint", epsilon=1e-5, momentum=0.9`. The
    defaults (`"per_group"`, Keras' 1e-3 and 0.99) are this library's original choice.
    Still different from the official code: the kernel predictor is initialised He-normal
    with fan_in here, Kaiming-normal with fan_out there (PyTorch's BN momentum 0.1 is
    Keras' 0.9).

    Args:
        kernel_size: odd int >= 1, size of the predicted kernels.
        groups: number of channel groups with their own kernels; must divide the channels.
        padding_mode: `"circular"`, `"zeros"`, `"reflect"` or `"symmetric"`.
        softmax: `"per_group"` (default): each group's `kernel_size**2` logits get their
            own softmax, so every group's kernel sums to 1 and a constant input passes
            through unchanged. `"joint"` (the official code): one softmax over all
            `groups * kernel_size**2` logits, so the kernels of all groups together sum to
            1 and each group's output is scaled by its share (with `groups=1` both agree).
        epsilon: BatchNormalization epsilon of the logits (default 1e-3, Keras' default;
            the official value is 1e-5).
        momentum: BatchNormalization moving-average momentum (default 0.99, Keras'
            default; the official PyTorch momentum 0.1 is 0.9 here).
        **kwargs: base layer arguments.

    Example:

    >>> y = DDAC2D(kernel_size=3, groups=2)(keras.random.normal((2, 8, 8, 4)))
    >>> tuple(y.shape)
    (2, 8, 8, 4)
    """

    def __init__(self, kernel_size=3, groups=8, padding_mode="circular", softmax="per_group",
                 epsilon=1e-3, momentum=0.99, **kwargs):
        super().__init__(**kwargs)
        kernel_size = _validation.check_positive_int("kernel_size", kernel_size)
        groups = _validation.check_positive_int("groups", groups)
        _validation.check_choice("padding_mode", padding_mode, _validation.PADDING_MODES)
        self.softmax = _validation.check_choice("softmax", softmax, SOFTMAX_MODES)
        self.epsilon = _validation.check_positive_number("epsilon", epsilon)
        self.momentum = _validation.check_unit_interval("momentum", momentum)
        self.kernel_size = kernel_size
        self.groups = groups
        self.padding_mode = padding_mode
        self.input_spec = keras.layers.InputSpec(ndim=4)
        self.kernel_predictor = keras.layers.Conv2D(
            groups * kernel_size * kernel_size,
            kernel_size,
            padding="valid",
            use_bias=False,
            kernel_initializer="he_normal",
            dtype=self.dtype_policy,
            name="kernel_predictor",
        )
        self.kernel_norm = keras.layers.BatchNormalization(
            epsilon=self.epsilon, momentum=self.momentum, dtype=self.dtype_policy,
            name="kernel_norm"
        )

    def build(self, input_shape):
        _validation.check_rank4(self, input_shape)
        channels = input_shape[-1]
        if channels % self.groups:
            raise ValueError(
                f"DDAC2D `groups`={self.groups} must divide the input channels ({channels}); "
                "pick a divisor of the channel count."
            )
        k = self.kernel_size
        padded = (input_shape[0], None if input_shape[1] is None else input_shape[1] + k - 1,
                  None if input_shape[2] is None else input_shape[2] + k - 1, channels)
        self.kernel_predictor.build(padded)
        self.kernel_norm.build(self.kernel_predictor.compute_output_shape(padded))

    def call(self, inputs, training=None):
        _validation.check_nonempty(self, inputs.shape)
        k = self.kernel_size
        g = self.groups
        padded = pad2d(inputs, filter_padding(k), self.padding_mode)
        logits = self.kernel_norm(self.kernel_predictor(padded), training=training)
        # Softmax in at least float32 so the kernels stay normalised under mixed precision.
        shape = ops.shape(inputs)
        logits = ops.cast(logits, _validation.scoring_dtype(inputs.dtype))
        if self.softmax == "joint":
            # Official: one softmax over the groups * k * k logits (group-major, as the
            # official reshape reads them), then split into the groups' kernels.
            kernels = ops.reshape(ops.softmax(logits, axis=-1),
                                  (-1, shape[1], shape[2], g, k * k))
        else:
            kernels = ops.softmax(ops.reshape(logits, (-1, shape[1], shape[2], g, k * k)),
                                  axis=-1)
        kernels = ops.cast(kernels, inputs.dtype)
        # Neighbourhood of every pixel as k*k shifted views: [B, H, W, k*k, C].
        patches = ops.stack(
            [padded[:, dy:dy + shape[1], dx:dx + shape[2], :]
             for dy in range(k) for dx in range(k)],
            axis=3,
        )
        c = inputs.shape[-1]
        patches = ops.reshape(patches, (-1, shape[1], shape[2], k * k, g, c // g))
        out = ops.einsum("bhwkgc,bhwgk->bhwgc", patches, kernels)
        return ops.reshape(out, (-1, shape[1], shape[2], c))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"kernel_size": self.kernel_size, "groups": self.groups,
             "padding_mode": self.padding_mode, "softmax": self.softmax,
             "epsilon": self.epsilon, "momentum": self.momentum}
        )
        return config
