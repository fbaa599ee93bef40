"""U-Nets for image-to-image regression; with APS/LPS + polyphase upsampling (APS-U) the
whole network is exactly equivariant to circular shifts.

Structure (the APS-U paper's U-Net, docs/design.md section 10): `inc` is a double conv
(3x3 conv with bias, BN, ReLU, twice); each of the `levels` encoder steps downsamples then
double-convs; each decoder step upsamples, concatenates the encoder feature map of the same
resolution and double-convs; `outc` is a 1x1 conv. Encoder downsamplers:

- `"maxpool"`: 2x2 max-pool, stride 2 (the baseline U-Net);
- `"blurpool"`: 2x2 max-pool at stride 1, then a blur and a fixed stride-2 grid (LPF);
- `"aps"` / `"lps"`: 2x2 max-pool at stride 1, then an (optional) blur and an adaptive
  (APS) or learned (LPS) choice among the four polyphase components.

Decoder upsamplers:

- `"transposed"`: a 2x2 stride-2 transposed conv halving the channels (then the blur of
  the LPF U-Net when the model blurs);
- `"bilinear"`: bilinear x2 (channels halved through the encoder's last level and the
  decoder, as in the U-Net with `bilinear=True`);
- `"polyphase"` (APS-U / LPU; `"aps-u"` and `"lpu"` are accepted names): the input goes
  on the polyphase component that the paired encoder downsampler kept, zeros elsewhere
  (`PolyphaseUpsampling2D` fed that downsampler's `probs`), then the blur (normalised to
  sum 1, as in the APS-U code), then a 2x2 conv halving the channels, padded one pixel at
  the bottom and right. Decoder step k uses the selection of the encoder step that went
  down from the same resolution.

Exact circular-shift equivariance holds at inference for `downsampling` `"aps"`/`"lps"`,
`upsampling="polyphase"`, `padding_mode="circular"` (and `up_padding_mode` circular) and
input sides divisible by `2**levels`, for any batch size and channel counts.
"""

import re

import keras

from lps_keras.layers import (
    APSDownsampling2D,
    BlurPool2D,
    LPSDownsampling2D,
    PolyphaseUpsampling2D,
    get_antialias,
)
from lps_keras.layers._validation import check_choice
from lps_keras.models.blocks import DEFAULT_LOGITS_CHANNELS, ConvFactory
from lps_keras.models.sampling import (
    PADDING_MODES,
    UNET_DOWNSAMPLING,
    SamplingSpec,
    resolve_sampling,
    scorer_width,
)

UPSAMPLING = ("transposed", "bilinear", "polyphase")
_UPSAMPLING_NAMES = {"aps-u": "polyphase", "lpu": "polyphase"}
# The official U-Nets' channels: [64, 128, 256, 512, 1024] for 4 levels.
DEFAULT_CHANNELS = (64, 128, 256, 512, 1024)
# The blur of `downsampling="blurpool"` when `antialias` is None, as for the ResNets.
DEFAULT_BLURPOOL = "lowpass3"


def upsampling_name(upsampling, spec):
    """The canonical upsampler name: None picks `"polyphase"` for APS/LPS encoders and
    `"transposed"` otherwise; `"aps-u"` and `"lpu"` mean `"polyphase"`."""
    if upsampling is None:
        return "polyphase" if spec.polyphase else "transposed"
    upsampling = _UPSAMPLING_NAMES.get(upsampling, upsampling)
    check_choice("upsampling", upsampling, UPSAMPLING)
    if upsampling == "polyphase" and not spec.polyphase:
        raise ValueError(
            "upsampling='polyphase' (APS-U/LPU) needs the selections of an adaptive encoder: "
            f"use downsampling='aps' or 'lps' (got {spec.downsampling!r}), or "
            "upsampling='transposed' or 'bilinear'.")
    return upsampling


def _blur(spec):
    """The antialias setting of the model's blurs (None: no blur)."""
    if spec.downsampling == "blurpool" and spec.antialias is None:
        return DEFAULT_BLURPOOL
    return spec.antialias


class _UNetParts(ConvFactory):
    """Makes the U-Net's blocks from one `SamplingSpec`."""

    def __init__(self, spec, up_padding_mode):
        super().__init__(spec.padding_mode, spec.sync_bn, spec.init, spec.batch_norm)
        self.spec = spec
        self.blur = _blur(spec)
        self.up_padding_mode = up_padding_mode

    def double_conv(self, x, filters, name, mid_filters=None):
        x = self.conv_bn_relu(x, mid_filters or filters, 3, f"{name}_1", use_bias=True)
        return self.conv_bn_relu(x, filters, 3, f"{name}_2", use_bias=True)

    def blur_layer(self, name):
        if self.blur is None:
            return None
        return get_antialias(self.blur, name=name, **{"padding_mode": self.padding_mode,
                                                      **self.spec.antialias_kwargs})

    def down(self, x, name, logits_channels):
        """One encoder downsampler; returns `(y, probs)` (`probs` None on fixed grids)."""
        spec = self.spec
        if spec.downsampling == "maxpool":
            return keras.layers.MaxPooling2D(2, name=f"{name}_pool")(x), None
        # Max-pool densely (stride 1, wrapping like the convs), then pick a grid.
        x = self.pad(x, ((0, 1), (0, 1)), f"{name}_pool_pad")
        x = keras.layers.MaxPooling2D(2, strides=1, name=f"{name}_pool")(x)
        if spec.downsampling == "blurpool":
            blur = get_antialias(self.blur, **spec.antialias_kwargs)  # validated size
            return BlurPool2D(blur.filter_size, stride=2,
                              padding_mode=spec.antialias_kwargs.get("padding_mode",
                                                                     self.padding_mode),
                              name=f"{name}_down")(x), None
        antialias = self.blur_layer(f"{name}_down_antialias")
        if spec.downsampling == "aps":
            layer = APSDownsampling2D(2, norm=spec.aps_norm, antialias=antialias,
                                      return_probs=True,
                                      score_unfiltered=spec.score_unfiltered,
                                      name=f"{name}_down")
        else:
            layer = LPSDownsampling2D(
                2, logits_model=spec.logits_model,
                hidden_channels=scorer_width(logits_channels, x.shape[-1]),
                antialias=antialias, return_probs=True,
                score_unfiltered=spec.score_unfiltered, name=f"{name}_down",
                **{"padding_mode": self.padding_mode, **spec.lps_kwargs})
        return layer(x)

    def up(self, x, upsampling, probs, name):
        """One decoder upsampler (x2)."""
        if upsampling == "bilinear":
            return keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_up")(x)
        filters = max(1, x.shape[-1] // 2)
        if upsampling == "transposed":
            x = keras.layers.Conv2DTranspose(filters, 2, strides=2,
                                             kernel_initializer=self.kernel_initializer(),
                                             name=f"{name}_up")(x)
            blur = self.blur_layer(f"{name}_blur")
            return blur(x) if blur is not None else x
        x = PolyphaseUpsampling2D(2, name=f"{name}_up")(x, probs)
        blur = self.blur_layer(f"{name}_blur")
        if blur is not None:
            x = blur(x)
        pad = ConvFactory(self.up_padding_mode).pad
        x = pad(x, ((0, 1), (0, 1)), f"{name}_up_conv_pad")
        return keras.layers.Conv2D(filters, 2, kernel_initializer=self.kernel_initializer(),
                                   name=f"{name}_up_conv")(x)


def _check_channels(channels):
    channels = tuple(channels)
    if len(channels) < 2 or any(isinstance(c, bool) or not isinstance(c, int) or c < 1
                                for c in channels):
        raise ValueError(
            "`channels` must list the widths of the U-Net's levels, positive ints, at least "
            f"two (one per level plus the bottom), e.g. {list(DEFAULT_CHANNELS)}; got "
            f"{list(channels)!r}.")
    return channels


def check_image_side(side, levels, what="input"):
    """Raises a ValueError unless `side` (an int, or None for any) is divisible by
    `2**levels`, the U-Net's size rule."""
    factor = 2 ** levels
    if side is not None and (side < factor or side % factor):
        raise ValueError(
            f"A U-Net with {levels} levels needs {what} height and width divisible by "
            f"{factor} (2**levels); got {side}. Crop or pad the images, or use fewer levels.")


_DOWN_POOL = re.compile(r"^down(\d+)_pool$")


def size_multiple(model):
    """`2**levels` for a model built by `unet` (its input sides must be multiples of it),
    else None.

    The levels are read from the layer names every encoder step has (`down{k}_pool`, for
    every `downsampling`), so this works for a `unet` model however it was renamed,
    saved and loaded; `lps_keras.export` uses it as the default `size_multiple`.
    """
    levels = [int(m.group(1)) for layer in getattr(model, "layers", ())
              if (m := _DOWN_POOL.match(layer.name))]
    return 2 ** max(levels) if levels else None


def unet_features(inputs, channels=DEFAULT_CHANNELS, downsampling="aps", antialias=None,
                  padding_mode="circular", logits_channels=DEFAULT_LOGITS_CHANNELS,
                  logits_model="conv", lps_kwargs=None, sync_bn=False, score_unfiltered=True,
                  bilinear=False, *, sampling=None):
    """Builds the U-Net encoder on `inputs`; for models that tap its features.

    Args:
        inputs: Keras tensor `[B, H, W, C]`.
        channels, downsampling, antialias, padding_mode, logits_channels, logits_model,
        lps_kwargs, sync_bn, score_unfiltered, sampling: as in `unet`.
        bilinear: halve the bottom level's width (the U-Net with bilinear upsampling).

    Returns:
        `(outputs, features, probs)`: the bottom feature map; a dict from total stride
        (1, 2, 4, ...) to the encoder's feature map at that stride (the skip connections);
        a dict from total stride to the `probs` of the downsampler that produced it
        (APS/LPS only).
    """
    spec = resolve_sampling(sampling, unet_features, locals())
    spec.check_family("U-Net", UNET_DOWNSAMPLING)
    channels = _check_channels(channels)
    levels = len(channels) - 1
    parts = _UNetParts(spec, spec.padding_mode)
    widths = spec.stage_widths(levels)
    x = parts.double_conv(inputs, channels[0], "inc")
    features, probs = {1: x}, {}
    for level in range(1, levels + 1):
        x, selection = parts.down(x, f"down{level}", widths[level - 1])
        filters = channels[level] // (2 if bilinear and level == levels else 1)
        x = parts.double_conv(x, max(1, filters), f"down{level}_conv")
        features[2 ** level] = x
        if selection is not None:
            probs[2 ** level] = selection
    return x, features, probs


def unet(input_shape=(None, None, 1), out_channels=1, channels=DEFAULT_CHANNELS,
         downsampling="aps", upsampling=None, antialias=None, padding_mode="circular",
         logits_channels=DEFAULT_LOGITS_CHANNELS, logits_model="conv", lps_kwargs=None,
         sync_bn=False, score_unfiltered=True, up_padding_mode=None, residual=False,
         name=None, *, sampling=None):
    """A U-Net mapping `[B, H, W, C_in]` images to `[B, H, W, out_channels]`.

    Args:
        input_shape: `(H, W, C_in)`; H and W (when given) must be divisible by
            `2**levels`. Default `(None, None, 1)`: any size obeying that rule.
        out_channels: channels of the output (linear, float32 1x1 conv).
        channels: widths from the top level down, one more than the number of levels:
            `(64, 128, 256, 512, 1024)` (4 levels, the default) or `(64, 128, 256, 512)`
            (3 levels), or any list of positive ints (odd widths are fine).
        downsampling: `"maxpool"` (baseline), `"blurpool"` (LPF), `"aps"` or `"lps"`.
        upsampling: `"transposed"`, `"bilinear"` or `"polyphase"` (`"aps-u"`, `"lpu"`);
            None: `"polyphase"` for APS/LPS, `"transposed"` otherwise.
        antialias: None (no blur; the APS-U code's `filter_size=1`) or `"lowpassN"` (its
            `filter_size=N`, N in 1-7) / `"ddacN"`: the blur inside every APS/LPS
            downsampler and after every transposed or polyphase upsampler. With
            `"blurpool"`, None means `"lowpass3"`.
        padding_mode: `"circular"` (exact equivariance) or `"zeros"`, for every conv,
            max-pool and blur.
        logits_channels, logits_model, lps_kwargs: the LPS scorers (as in `resnet`);
            `logits_channels` may give one width per level.
        sync_bn, score_unfiltered: as in `resnet`. The APS-U code scores the blurred
            input (`score_unfiltered=False`); with the default `antialias=None` this makes
            no difference.
        up_padding_mode: the padding of the 2x2 conv after each polyphase upsampler (None:
            `padding_mode`). The APS-U code pads it circularly in every network
            (converted checkpoints set `"circular"`).
        residual: add the input to the output (the network learns a correction of its
            input, e.g. of a zero-filled reconstruction); needs `out_channels` equal to
            the input channels. The APS-U code's U-Nets are not residual (False).
        name: model name.
        sampling: a `SamplingSpec` (or its `to_dict()`) in place of the keyword sampling
            settings (then `init`, `batch_norm`, `aps_norm` and `antialias_kwargs` apply
            too: e.g. `antialias_kwargs={"padding_mode": "reflect"}` is the blur padding
            of the LPF U-Net code with zero padding).

    Returns:
        A functional `keras.Model` (float32 outputs).

    Example:

    >>> model = unet((32, 32, 1), channels=(8, 16, 32, 64), downsampling="aps")
    >>> model(keras.random.normal((2, 32, 32, 1)), training=False).shape
    TensorShape([2, 32, 32, 1])
    """
    spec = resolve_sampling(sampling, unet, locals())
    spec.check_family("U-Net", UNET_DOWNSAMPLING)
    upsampling = upsampling_name(upsampling, spec)
    channels = _check_channels(channels)
    levels = len(channels) - 1
    if len(tuple(input_shape)) != 3:
        raise ValueError(f"`input_shape` must be (H, W, C); got {input_shape!r}.")
    for side in tuple(input_shape)[:2]:
        check_image_side(side, levels, "`input_shape`")
    if up_padding_mode is not None:
        check_choice("up_padding_mode", up_padding_mode, PADDING_MODES)
    if isinstance(out_channels, bool) or not isinstance(out_channels, int) or out_channels < 1:
        raise ValueError(f"`out_channels` must be a positive int; got {out_channels!r}.")

    if residual and out_channels != input_shape[-1]:
        raise ValueError(f"`residual=True` adds the input to the output, so `out_channels` "
                         f"({out_channels}) must equal the input channels "
                         f"({input_shape[-1]}).")
    bilinear = upsampling == "bilinear"
    inputs = keras.Input(tuple(input_shape), name="images")
    x, features, probs = unet_features(inputs, channels, sampling=spec, bilinear=bilinear)
    parts = _UNetParts(spec, up_padding_mode or spec.padding_mode)
    for step, level in enumerate(range(levels, 0, -1), start=1):
        block = f"up{step}"
        x = parts.up(x, upsampling, probs.get(2 ** level), block)
        skip = features[2 ** (level - 1)]
        x = keras.layers.Concatenate(name=f"{block}_concat")([skip, x])
        # Bilinear keeps the width, so the conv halves it (mid width as the U-Net code).
        filters = channels[level - 1] // (2 if bilinear and level > 1 else 1)
        mid = x.shape[-1] // 2 if bilinear else None
        x = parts.double_conv(x, max(1, filters), f"{block}_conv", mid_filters=mid)
    outputs = keras.layers.Conv2D(out_channels, 1, dtype="float32", name="outc")(x)
    if residual:
        outputs = keras.layers.Add(dtype="float32", name="residual")([inputs, outputs])
    return keras.Model(inputs, outputs,
                       name=name or f"unet{levels}_{spec.downsampling}_{upsampling}")


@keras.saving.register_keras_serializable(package="lps_keras")
class UNetEncoder(keras.Model):
    """The U-Net encoder as a model: images to the bottom feature map, with its taps.

    A functional model built in `__init__` (keras-hub style), so it saves to `.keras` by its
    constructor arguments.

    Args:
        channels, sampling: as in `unet` (`sampling`: a `SamplingSpec`, its `to_dict()`,
            or None: max-pool).
        input_shape: `(H, W, C)`; default `(None, None, 1)`.
        bilinear: halve the bottom level's width.
        **kwargs: `keras.Model` arguments (`name`, `trainable`).

    Attributes:
        pyramid_outputs: dict from total stride (1, 2, 4, ...) to the encoder feature map
            at that stride.
        probs: dict from total stride to the selection of the downsampler that produced
            it (APS/LPS only).
        sampling: the `SamplingSpec`.

    Example:

    >>> encoder = UNetEncoder((8, 16, 32), input_shape=(16, 16, 1),
    ...                       sampling=SamplingSpec(downsampling="aps"))
    >>> sorted(encoder.pyramid_outputs), sorted(encoder.probs)
    ([1, 2, 4], [2, 4])
    """

    def __init__(self, channels=DEFAULT_CHANNELS, input_shape=(None, None, 1), sampling=None,
                 bilinear=False, **kwargs):
        spec = SamplingSpec.coerce(sampling if sampling is not None
                                   else {"downsampling": "maxpool"})
        channels = _check_channels(channels)
        inputs = keras.Input(tuple(input_shape), name="images")
        x, features, probs = unet_features(inputs, channels, sampling=spec, bilinear=bilinear)
        kwargs.setdefault("name", f"unet{len(channels) - 1}_encoder_{spec.downsampling}")
        super().__init__(inputs=inputs, outputs=x, **kwargs)
        self.channels = channels
        self.image_shape = tuple(input_shape)
        self.sampling = spec
        self.bilinear = bilinear
        self.pyramid_outputs = features
        self.probs = probs

    def get_config(self):
        return {"channels": list(self.channels), "input_shape": list(self.image_shape),
                "sampling": self.sampling.to_dict(), "bilinear": self.bilinear,
                "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
