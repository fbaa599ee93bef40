"""Building blocks shared by the classifiers and segmenters.

Everything here is a function on Keras tensors, so the models come out as flat functional
graphs whose intermediate features and selections DeepLab can tap directly.

`ConvFactory` makes the padded convs and batch norms (padding mode, sync BN); `Builder` adds
the downsampler policy of a `SamplingSpec` (downsampling, antialias, scorer settings).
"""

import keras

from lps_keras.layers import (
    APSDownsampling2D,
    BlurPool2D,
    CircularPad2D,
    LPSDownsampling2D,
    TorchBatchNormalization,
    get_antialias,
)
from lps_keras.layers._validation import check_choice
from lps_keras.models.sampling import (  # noqa: F401 (re-exported: their old home)
    AUTO_WIDTH_DIVISOR,
    AUTO_WIDTH_MIN,
    BATCH_NORMS,
    DEFAULT_LOGITS_CHANNELS,
    DOWNSAMPLING,
    INITS,
    PADDING_MODES,
    SamplingSpec,
    scorer_width,
)

# Torch-like BN: the papers' recipes assume momentum 0.1 (Keras 0.9) and eps 1e-5.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


class ConvFactory:
    """Makes pads, convs and batch norms in one padding mode with one BN kind.

    Args:
        padding_mode: `"circular"` (exact invariance) or `"zeros"` for every spatial conv.
        sync_bn: use `BatchNormalization(synchronized=True)` (multi-replica training).
        init: `"keras"` (he_normal kernels) or `"torch"` (kaiming_normal with fan_out, as
            the papers' PyTorch ResNets re-initialise their convs).
        batch_norm: `"keras"` or `"torch"` (`TorchBatchNormalization`: PyTorch's
            moving-variance update).
    """

    def __init__(self, padding_mode="circular", sync_bn=False, init="keras",
                 batch_norm="keras"):
        self.padding_mode = check_choice("padding_mode", padding_mode, PADDING_MODES)
        self.sync_bn = sync_bn
        self.init = check_choice("init", init, INITS)
        self.batch_norm = check_choice("batch_norm", batch_norm, BATCH_NORMS)

    @classmethod
    def from_spec(cls, spec):
        return cls(spec.padding_mode, spec.sync_bn, spec.init, spec.batch_norm)

    def kernel_initializer(self):
        """The conv kernel initializer of `init`."""
        if self.init == "torch":  # nn.init.kaiming_normal_(mode="fan_out", "relu")
            return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")
        return "he_normal"

    def dense_initializers(self, fan_in):
        """`(kernel, bias)` initializers of a classifier with `fan_in` inputs."""
        if self.init == "torch":  # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            bound = fan_in ** -0.5
            return (keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
                    keras.initializers.RandomUniform(-bound, bound))
        return "glorot_uniform", "zeros"

    def pad(self, x, amount, name):
        """Pads by `amount` (int or ((top, bottom), (left, right))) in the padding mode."""
        if amount == 0:
            return x
        if self.padding_mode == "circular":
            return CircularPad2D(amount, name=name)(x)
        return keras.layers.ZeroPadding2D(amount, name=name)(x)

    def conv(self, x, filters, kernel_size, name, strides=1, dilation=1, use_bias=False):
        """Conv with explicit padding `dilation*(k-1)/2` in the network's padding mode."""
        x = self.pad(x, dilation * (kernel_size - 1) // 2, name=f"{name}_pad")
        return keras.layers.Conv2D(
            filters, kernel_size, strides=strides, dilation_rate=dilation, padding="valid",
            use_bias=use_bias, kernel_initializer=self.kernel_initializer(), name=name,
        )(x)

    def bn(self, x, name, zero_init=False):
        gamma = "zeros" if zero_init else "ones"
        if self.batch_norm == "torch":
            return TorchBatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                           gamma_initializer=gamma, name=name)(x)
        return keras.layers.BatchNormalization(
            momentum=BN_MOMENTUM, epsilon=BN_EPSILON, synchronized=self.sync_bn,
            gamma_initializer=gamma, name=name,
        )(x)

    def conv_bn_relu(self, x, filters, kernel_size, name, strides=1, dilation=1, relu=True,
                     use_bias=False):
        x = self.conv(x, filters, kernel_size, f"{name}_conv", strides, dilation, use_bias)
        x = self.bn(x, f"{name}_bn")
        return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


class Builder(ConvFactory):
    """The conv factory plus the downsampler policy of one `SamplingSpec`.

    `Builder(spec)` or, as before, `Builder("lps", antialias=..., ...)` with the keyword
    settings of `SamplingSpec` (`logits_channels` is not used here: the blocks pass each
    downsampler's width).
    """

    def __init__(self, downsampling="strided", **settings):
        if isinstance(downsampling, SamplingSpec):
            if settings:
                raise ValueError("Give `Builder` a SamplingSpec or settings, not both.")
            spec = downsampling
        else:
            spec = SamplingSpec(downsampling=downsampling, **settings)
        super().__init__(spec.padding_mode, spec.sync_bn, spec.init, spec.batch_norm)
        self.spec = spec

    downsampling = property(lambda self: self.spec.downsampling)
    antialias = property(lambda self: self.spec.antialias)
    logits_model = property(lambda self: self.spec.logits_model)
    lps_kwargs = property(lambda self: self.spec.lps_kwargs)
    score_unfiltered = property(lambda self: self.spec.score_unfiltered)
    polyphase = property(lambda self: self.spec.polyphase)

    def downsample(self, x, name, logits_channels=DEFAULT_LOGITS_CHANNELS, probs=None,
                   antialias=True):
        """Replaces a stride-2 step; returns `(y, probs)` (`probs` None for fixed grids).

        Given `probs`, applies that selection (shortcuts) and makes no scorer.
        `logits_channels` is the LPS scorer width: `"auto"`, None or an int (`scorer_width`).
        `antialias=False` leaves out the spec's antialias filter (APS/LPS only).
        """
        if self.downsampling == "blurpool":
            size = int(self.antialias[-1]) if self.antialias else 3
            return BlurPool2D(size, stride=2, padding_mode=self.padding_mode, name=name)(x), None
        antialias = self._antialias_layer(f"{name}_antialias") if antialias else None
        if probs is not None or self.downsampling == "aps":
            layer = APSDownsampling2D(2, norm=self.spec.aps_norm, antialias=antialias,
                                      return_probs=True,
                                      score_unfiltered=self.score_unfiltered, name=name)
            return layer(x, probs=probs) if probs is not None else layer(x)
        layer = LPSDownsampling2D(
            2, logits_model=self.logits_model,
            hidden_channels=scorer_width(logits_channels, x.shape[-1]),
            antialias=antialias, return_probs=True, score_unfiltered=self.score_unfiltered,
            name=name, **{"padding_mode": self.padding_mode, **self.lps_kwargs},
        )
        return layer(x)

    def _antialias_layer(self, name):
        if self.antialias is None:
            return None
        # `antialias_kwargs["padding_mode"]` may differ from the network's (the papers'
        # code pads its filters circularly also in zero-padded networks).
        return get_antialias(self.antialias, name=name,
                             **{"padding_mode": self.padding_mode,
                                **self.spec.antialias_kwargs})


def _selects(b, stride):
    return stride != 1 and b.downsampling != "strided"


def _conv_with_downsampling(b, y, filters, kernel_size, stride, block, conv, dilation,
                            logits_channels):
    """Conv `<block>_<conv>_conv` with the block's downsampler `<block>_down` before it
    (after it with `swap_conv_pool`), both before the conv's BN; returns `(y, probs)`."""
    probs = None
    selects = _selects(b, stride)
    if selects and not b.spec.swap_conv_pool:
        y, probs = b.downsample(y, f"{block}_down", logits_channels)
    y = b.conv(y, filters, kernel_size, f"{block}_{conv}_conv", dilation=dilation)
    if selects and b.spec.swap_conv_pool:
        y, probs = b.downsample(y, f"{block}_down", logits_channels)
    return y, probs


def basic_block(b, x, filters, stride, name, dilation=1, logits_channels=DEFAULT_LOGITS_CHANNELS):
    """ResNet BasicBlock; returns `(x, probs)` (`probs` None when nothing selects).

    With APS/LPS the stride moves to a downsampler before the second 3x3 conv (after it
    with `swap_conv_pool`), as in the papers' code."""
    in_channels = x.shape[-1]
    plain_stride = 1 if _selects(b, stride) else stride
    y = b.conv_bn_relu(x, filters, 3, f"{name}_1", strides=plain_stride, dilation=dilation)
    y, probs = _conv_with_downsampling(b, y, filters, 3, stride, name, 2, dilation,
                                       logits_channels)
    y = b.bn(y, f"{name}_2_bn")
    shortcut = _shortcut(b, x, filters, stride, in_channels, name, probs)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(x), probs


def bottleneck_block(b, x, filters, stride, name, dilation=1,
                     logits_channels=DEFAULT_LOGITS_CHANNELS, expansion=4):
    """ResNet v1.5 Bottleneck (stride on the 3x3 conv); returns `(x, probs)`.

    With APS/LPS the stride moves to a downsampler after the 3x3 conv's ReLU, before the
    last 1x1 conv (after it with `swap_conv_pool`), as in the papers' code."""
    in_channels = x.shape[-1]
    plain_stride = 1 if _selects(b, stride) else stride
    y = b.conv_bn_relu(x, filters, 1, f"{name}_1")
    y = b.conv_bn_relu(y, filters, 3, f"{name}_2", strides=plain_stride, dilation=dilation)
    y, probs = _conv_with_downsampling(b, y, filters * expansion, 1, stride, name, 3, 1,
                                       logits_channels)
    y = b.bn(y, f"{name}_3_bn")
    shortcut = _shortcut(b, x, filters * expansion, stride, in_channels, name, probs)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(x), probs


def _shortcut(b, x, filters, stride, in_channels, name, probs):
    if stride == 1 and in_channels == filters:
        return x
    if stride != 1 and b.downsampling != "strided":
        # Same selection as the main branch, or the sum misaligns by a pixel.
        x, _ = b.downsample(x, f"{name}_short_down", probs=probs)
        stride = 1
    x = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False,
                            kernel_initializer=b.kernel_initializer(),
                            name=f"{name}_short_conv")(x)
    return b.bn(x, f"{name}_short_bn")
