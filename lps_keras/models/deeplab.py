"""DeepLabV3+ segmenters; with LPS + LPU the whole network is shift-equivariant."""

import keras

from lps_keras.layers import InvariantGlobalAveragePooling2D, PolyphaseUpsampling2D
from lps_keras.models.blocks import DEFAULT_LOGITS_CHANNELS, ConvFactory
from lps_keras.models.resnet import ResNetBackbone, load_weights_file, resnet_features
from lps_keras.models.sampling import resolve_sampling

BACKBONES = {"resnet18": 18, "resnet34": 34, "resnet50": 50, "resnet101": 101}
UPSAMPLING = ("lpu", "bilinear")
# ASPP rates at output stride 16 (DeepLabV3); they scale inversely with the output stride.
_ASPP_RATES_OS16 = (6, 12, 18)


@keras.saving.register_keras_serializable(package="lps_keras")
class SpatialBroadcast(keras.layers.Layer):
    """Repeats a `[B, 1, 1, C]` tensor over the height and width of `reference`.

    The ASPP image-pooling branch uses it instead of bilinear upsampling: a constant map
    is shift-invariant, an interpolated one need not be.

    Example:

    >>> y = SpatialBroadcast()(keras.ops.ones((2, 1, 1, 3)), keras.ops.zeros((2, 4, 5, 8)))
    >>> tuple(y.shape)
    (2, 4, 5, 3)
    """

    def call(self, inputs, reference):
        shape = keras.ops.shape(reference)
        return keras.ops.broadcast_to(inputs, (shape[0], shape[1], shape[2], inputs.shape[-1]))

    def compute_output_shape(self, inputs_shape, reference_shape):
        return tuple(reference_shape[:3]) + (inputs_shape[-1],)


class _Decoder:
    """Upsamples by 2 per step, either with LPU (paired with the backbone's selection at the
    target resolution) or bilinearly."""

    def __init__(self, upsampling, probs, antialias):
        self.upsampling = upsampling
        self.probs = probs
        self.antialias = antialias

    def up(self, x, from_stride, to_stride, name):
        stride = from_stride
        while stride > to_stride:
            if self.upsampling == "lpu":
                # The downsampler that went from stride/2 to stride chose this phase.
                x = PolyphaseUpsampling2D(2, antialias=self.antialias,
                                          name=f"{name}_lpu{stride}")(x, self.probs[stride])
            else:
                x = keras.layers.UpSampling2D(2, interpolation="bilinear",
                                              name=f"{name}_bilinear{stride}")(x)
            stride //= 2
        return x


def _aspp(layers, x, rates, filters, name, padding_modes=None):
    branches = [layers.conv_bn_relu(x, filters, 1, f"{name}_1x1")]
    for i, rate in enumerate(rates):
        # Circular wrap padding of width `rate`, also when wider than the feature map.
        branch_layers = layers
        if padding_modes is not None and padding_modes[i] != layers.padding_mode:
            branch_layers = ConvFactory(padding_modes[i], layers.sync_bn, layers.init)
        branches.append(branch_layers.conv_bn_relu(x, filters, 3, f"{name}_rate{rate}",
                                                   dilation=rate))
    pooled = InvariantGlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    pooled = layers.conv_bn_relu(pooled, filters, 1, f"{name}_pool_proj")
    pooled = SpatialBroadcast(name=f"{name}_pool_broadcast")(pooled, branches[0])
    branches.append(pooled)
    x = keras.layers.Concatenate(name=f"{name}_concat")(branches)
    return layers.conv_bn_relu(x, filters, 1, f"{name}_proj")


def deeplabv3plus(backbone="resnet18", num_classes=21, input_shape=(None, None, 3),
                  output_stride=16, downsampling="lps", upsampling="lpu", antialias=None,
                  padding_mode="circular", logits_channels=DEFAULT_LOGITS_CHANNELS,
                  logits_model="conv", lps_kwargs=None, sync_bn=False, aspp_filters=256,
                  decoder_filters=256, low_level_filters=48, lpu_antialias="lowpass3",
                  score_unfiltered=True, name=None, *, sampling=None, aspp_rates=None,
                  aspp_padding_modes=None, decoder_convs=2, weights=None):
    """DeepLabV3+ on a ResNet backbone (ImageNet stem).

    Args:
        backbone: `"resnet18"`, `"resnet34"`, `"resnet50"` or `"resnet101"`, or a
            `ResNetBackbone` of those depths (ImageNet stem, built with this
            `output_stride`), which brings its input shape and sampling settings:
            `input_shape` is then ignored and the keyword settings must keep their
            defaults.
        num_classes: number of segmentation classes.
        input_shape: `(H, W, C)`. Exact equivariance needs H, W divisible by 32 (and
            circular padding, APS/LPS and `upsampling="lpu"`).
        output_stride: 16 (last stage dilated, ASPP rates 6/12/18), 32 (rates 3/6/9) or 8
            (last two stages dilated, rates 12/24/36).
        downsampling: `"strided"`, `"blurpool"`, `"aps"` or `"lps"` for the backbone.
        upsampling: `"lpu"` (every x2 upsampling is a `PolyphaseUpsampling2D` fed the
            selection of the backbone downsampler at that resolution; needs APS/LPS) or
            `"bilinear"`.
        antialias, padding_mode, logits_channels, logits_model, lps_kwargs, sync_bn,
        score_unfiltered, sampling: as in `lps_keras.models.resnet`.
        aspp_filters, decoder_filters, low_level_filters: widths (256/256/48 by default).
        lpu_antialias: interpolation filter after each LPU (None: zeros stay zeros).
            A binomial filter scaled by 4 turns the zero-filled phases into a linear
            interpolation without affecting equivariance.
        name: model name.
        aspp_rates: three ASPP dilation rates instead of the ones of `output_stride`
            (the LPS paper's code: its backbone keeps output stride 32 but its ASPP uses
            the rates of 16, 6/12/18).
        aspp_padding_modes: one padding mode per ASPP rate (None: `padding_mode`); the
            LPS paper's code zero-pads its third dilated branch.
        decoder_convs: 3x3 conv-BN-ReLU layers after the decoder concatenation (2; the
            DeepLabV3+ of the papers' code has 1).
        weights: None or the path of a local `.weights.h5` or `.keras` file of the same
            architecture, loaded all or nothing (as in `lps_keras.models.resnet`: nothing
            is downloaded; `FileNotFoundError` for a missing file, `ValueError` for one
            that does not fit).

    Returns:
        A functional `keras.Model` mapping images to per-pixel logits at input size.

    Example:

    >>> model = deeplabv3plus("resnet18", num_classes=5, input_shape=(64, 64, 3),
    ...                       aspp_filters=32, decoder_filters=32, logits_channels=8)
    >>> model(keras.random.normal((1, 64, 64, 3)), training=False).shape
    TensorShape([1, 64, 64, 5])
    """
    if isinstance(backbone, ResNetBackbone):
        if sampling is not None:
            raise ValueError("A ResNetBackbone carries its sampling settings; leave out "
                             "`sampling`.")
        spec = resolve_sampling(backbone.sampling, deeplabv3plus, locals())
        backbone_name = f"resnet{backbone.depth}"
    else:
        spec = resolve_sampling(sampling, deeplabv3plus, locals())
        backbone_name = backbone
    if backbone_name not in BACKBONES:
        raise ValueError(f"`backbone` must be one of {tuple(BACKBONES)}; got {backbone_name!r}.")
    if upsampling not in UPSAMPLING:
        raise ValueError(f"`upsampling` must be one of {UPSAMPLING}; got {upsampling!r}.")
    if output_stride not in (8, 16, 32):
        raise ValueError(f"`output_stride` must be 8, 16 or 32; got {output_stride!r}.")
    if upsampling == "lpu" and not spec.polyphase:
        raise ValueError(
            "upsampling='lpu' needs the selections of a polyphase backbone: use "
            f"downsampling='aps' or 'lps' (got {spec.downsampling!r}), or upsampling='bilinear'."
        )
    if isinstance(backbone, ResNetBackbone):
        if backbone.stem != "imagenet" or (backbone.output_stride or 32) != output_stride:
            raise ValueError(
                f"The backbone needs stem='imagenet' and output_stride={output_stride}; got "
                f"stem={backbone.stem!r}, output_stride={backbone.output_stride!r}."
            )
        inputs, x = backbone.input, backbone.output
        features, probs = backbone.pyramid_outputs, backbone.probs
    else:
        inputs = keras.Input(input_shape, name="images")
        x, features, probs = resnet_features(inputs, BACKBONES[backbone], stem="imagenet",
                                             output_stride=output_stride, sampling=spec)
    layers = ConvFactory.from_spec(spec)
    rates = tuple(r * 16 // output_stride for r in _ASPP_RATES_OS16)
    if aspp_rates is not None:
        rates = tuple(int(r) for r in aspp_rates)
    if len(rates) != 3 or len(set(rates)) != 3:
        raise ValueError(f"`aspp_rates` must be three distinct rates; got {aspp_rates!r}.")
    if aspp_padding_modes is not None and len(aspp_padding_modes) != len(rates):
        raise ValueError(f"`aspp_padding_modes` needs one mode per rate; got "
                         f"{aspp_padding_modes!r}.")
    if decoder_convs not in (1, 2):
        raise ValueError(f"`decoder_convs` must be 1 or 2; got {decoder_convs!r}.")
    decoder = _Decoder(upsampling, probs, lpu_antialias)

    x = _aspp(layers, x, rates, aspp_filters, "aspp", aspp_padding_modes)
    x = decoder.up(x, output_stride, 4, "decoder_up")
    low = layers.conv_bn_relu(features[4], low_level_filters, 1, "low_level")
    x = keras.layers.Concatenate(name="decoder_concat")([x, low])
    for i in range(decoder_convs):
        x = layers.conv_bn_relu(x, decoder_filters, 3, f"decoder_conv{i + 1}")
    x = keras.layers.Conv2D(num_classes, 1, name="classifier")(x)
    x = decoder.up(x, 4, 1, "final_up")
    model = keras.Model(inputs, x,
                        name=name or f"deeplabv3plus_{backbone_name}_{spec.downsampling}")
    if weights is not None:
        load_weights_file(model, weights)
    return model
