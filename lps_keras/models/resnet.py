"""ResNet classifiers with strided, BlurPool, APS or LPS downsampling.

Placement (docs/design.md, section 4): every stride-2 step becomes a stride-1 conv, BN,
ReLU and a downsampler; shortcuts reuse the main branch's selection. With
`padding_mode="circular"`, APS/LPS and input sizes divisible by 2**num_downsamplers (32 for
the ImageNet stem, 8 for CIFAR ResNet-18, 4 for ResNet-20/56), the logits are exactly
invariant to circular shifts at inference.
"""

import io
import os
import zipfile

import keras

from lps_keras.layers import CircularPad2D
from lps_keras.layers.pooling import InvariantGlobalAveragePooling2D
from lps_keras.models.blocks import (
    DEFAULT_LOGITS_CHANNELS,
    Builder,
    ConvFactory,
    basic_block,
    bottleneck_block,
)
from lps_keras.models.sampling import RESNET_DOWNSAMPLING, SamplingSpec, resolve_sampling

# depth: (block kind, blocks per stage, stage widths)
_IMAGENET_STAGES = (64, 128, 256, 512)
DEPTHS = {
    18: ("basic", (2, 2, 2, 2), _IMAGENET_STAGES),
    34: ("basic", (3, 4, 6, 3), _IMAGENET_STAGES),
    50: ("bottleneck", (3, 4, 6, 3), _IMAGENET_STAGES),
    101: ("bottleneck", (3, 4, 23, 3), _IMAGENET_STAGES),
    20: ("basic", (3, 3, 3), (16, 32, 64)),
    56: ("basic", (9, 9, 9), (16, 32, 64)),
}
STEMS = ("cifar", "imagenet")
POOLINGS = (None, "avg", "max")
WEIGHTS_SUFFIXES = (".weights.h5", ".keras")


def resnet_features(inputs, depth, stem="imagenet", downsampling="strided", antialias=None,
                    padding_mode="circular", logits_channels=DEFAULT_LOGITS_CHANNELS,
                    logits_model="conv", lps_kwargs=None, sync_bn=False, output_stride=None,
                    score_unfiltered=True, *, sampling=None):
    """Builds the ResNet body on `inputs`; for models that tap intermediate features.

    Args:
        inputs: Keras tensor `[B, H, W, C]`.
        depth, stem, downsampling, antialias, padding_mode, logits_channels,
        logits_model, lps_kwargs, sync_bn, score_unfiltered, sampling: as in `resnet`.
        output_stride: None (no dilation) or 8/16/32 for ImageNet-stem backbones: stages
            past that stride keep their resolution and dilate their 3x3 convs instead.

    Returns:
        `(outputs, features, probs)`: the last feature map; a dict from total stride
        (1, 2, 4, ...) to the last feature map at that stride; a dict from total stride to
        the `probs` of the downsampler that produced it (APS/LPS only).
    """
    spec = resolve_sampling(sampling, resnet_features, locals())
    spec.check_family("ResNet", RESNET_DOWNSAMPLING)
    if depth not in DEPTHS:
        raise ValueError(f"`depth` must be one of {tuple(DEPTHS)}; got {depth!r}.")
    if stem not in STEMS:
        raise ValueError(f"`stem` must be one of {STEMS}; got {stem!r}.")
    kind, blocks, widths = DEPTHS[depth]
    if output_stride not in (None, 8, 16, 32):
        raise ValueError(f"`output_stride` must be None, 8, 16 or 32; got {output_stride!r}.")
    if output_stride is not None and stem != "imagenet":
        raise ValueError("`output_stride` needs the ImageNet stem (stride 4 before stage 1).")
    b = Builder(spec)
    scorer_widths = spec.stage_widths(len(widths))
    features, probs = {}, {}
    stride_now = 1

    def record(x, p):
        features[stride_now] = x
        if p is not None:
            probs[stride_now] = p

    x = inputs
    if stem == "imagenet":
        if b.downsampling == "strided":
            x = b.conv_bn_relu(x, widths[0], 7, "stem", strides=2)
            stride_now = 2
            record(x, None)
            # Zero padding after ReLU equals the usual -inf padding of max-pooling.
            x = b.pad(x, 1, "stem_pool_pad")
            x = keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
            stride_now = 4
            record(x, None)
        else:
            if spec.conv1_stride:  # an ablation: conv1 keeps its plain stride
                x = b.conv_bn_relu(x, widths[0], 7, "stem", strides=2)
                p = None
            else:
                x = b.conv_bn_relu(x, widths[0], 7, "stem")
                x, p = b.downsample(x, "stem_down1", scorer_widths[0],
                                    antialias=spec.stem_antialias)
            stride_now = 2
            record(x, p)
            # 2x2 max-pool at stride 1 needs one extra row/column at the end.
            pool_padding = spec.maxpool_padding or (
                "zeros" if spec.maxpool_zpad else spec.padding_mode)
            if pool_padding == "zeros":  # maxpool_zpad: an ablation
                x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name="stem_pool_pad")(x)
            else:
                x = CircularPad2D(((0, 1), (0, 1)), name="stem_pool_pad")(x)
            x = keras.layers.MaxPooling2D(2, strides=1, name="stem_pool")(x)
            x, p = b.downsample(x, "stem_down2", scorer_widths[0])
            stride_now = 4
            record(x, p)
    else:
        x = b.conv_bn_relu(x, widths[0], 3, "stem")
        record(x, None)

    block_fn = basic_block if kind == "basic" else bottleneck_block
    dilation = 1
    for stage, (n, width) in enumerate(zip(blocks, widths, strict=True)):
        stage_stride = 1 if stage == 0 else 2
        if output_stride is not None and stage_stride == 2 and stride_now >= output_stride:
            dilation *= 2  # keep the resolution, widen the receptive field instead
            stage_stride = 1
        for i in range(n):
            stride = stage_stride if i == 0 else 1
            x, p = block_fn(b, x, width, stride, f"stage{stage + 1}_block{i + 1}",
                            dilation=dilation, logits_channels=scorer_widths[stage])
            if stride == 2:
                stride_now *= 2
            if p is not None:
                probs[stride_now] = p
        features[stride_now] = x
    return x, features, probs


def resnet(depth, num_classes=1000, input_shape=None, stem="imagenet", downsampling="strided",
           antialias=None, padding_mode="circular", logits_channels=DEFAULT_LOGITS_CHANNELS,
           logits_model="conv", lps_kwargs=None, include_top=True, sync_bn=False, dropout=0.0,
           score_unfiltered=True, name=None, *, sampling=None, pooling=None,
           classifier_activation=None, input_tensor=None, weights=None):
    """A ResNet classifier (or feature extractor), with `keras.applications`' arguments.

    Args:
        depth: 18, 34, 50, 101 (ImageNet blocks) or 20, 56 (CIFAR three-stage blocks,
            widths 16/32/64). Depths 18-101 with `stem="cifar"` give the CIFAR ResNet-18
            etc. used in the LPS paper.
        num_classes: number of logits.
        input_shape: `(H, W, C)`; None means `(None, None, 3)`. Exact invariance needs H and
            W divisible by 2**(number of downsamplers).
        stem: `"imagenet"` (7x7 conv + max-pool, stride 4) or `"cifar"` (3x3 conv, stride 1).
        downsampling: `"strided"` (standard), `"blurpool"`, `"aps"` or `"lps"`.
        antialias: None, `"lowpassN"` or `"ddacN"` for APS/LPS (N: filter size); with
            `"blurpool"`, `"lowpassN"` sets the blur size.
        padding_mode: `"circular"` or `"zeros"`, for every spatial conv and blur.
        logits_channels: LPS scorer width: `"auto"` (default: a quarter of the
            downsampler's input channels, at least 8, which keeps LPS ResNet-18 on CIFAR
            at 1.5x the MACs of the strided model), None (the input channels, as in the
            papers: 2.1x), an int, or one value per stage (the stem's downsamplers use
            stage 1's value). The width does not affect the invariance.
        logits_model: LPS scorer name (`"conv"`, `"attention"`, ...).
        lps_kwargs: extra `LPSDownsampling2D` arguments, e.g. `{"tau": 1.0, "hard": False}`.
        include_top: if True (default), global average pooling (exact:
            `InvariantGlobalAveragePooling2D`), optional dropout and the `Dense` classifier;
            if False, the model returns features, shaped by `pooling`.
        sync_bn: synchronized batch normalization across replicas.
        dropout: dropout rate before the classifier.
        score_unfiltered: with `antialias`, select on the unfiltered input and return the
            filtered one (default True: a blur evens out the components and invites ties).
        name: model name.
        sampling: a `SamplingSpec` (or its `to_dict()`) in place of the keyword settings
            `downsampling`, `antialias`, `padding_mode`, `logits_channels`, `logits_model`,
            `lps_kwargs`, `sync_bn`, `score_unfiltered` (which then keep their defaults).
        pooling: with `include_top=False`: None (default: the last feature map
            `[B, h, w, C]`), `"avg"` (`InvariantGlobalAveragePooling2D`: `[B, C]`, bitwise
            shift-invariant) or `"max"` (`GlobalMaxPooling2D`: `[B, C]`; a maximum does not
            depend on the order of its inputs, so it is exactly shift-invariant too). With
            `include_top=True` only None or `"avg"` (the head's pooling).
        classifier_activation: None (default: logits, what the losses of `train.py` and
            `from_logits=True` expect) or a Keras activation applied after the classifier,
            e.g. `"softmax"` (computed in float32 under mixed precision). Needs
            `include_top=True`.
        input_tensor: a Keras tensor (e.g. the output of another model's layer, or
            `keras.Input(...)`) to build the model on, in place of a new `keras.Input`;
            `input_shape` defaults to its shape, and a given `input_shape` must agree.
        weights: None (random initialisation; nothing is ever downloaded) or the path of a
            local weights file: a `.weights.h5` (`model.save_weights`) or a `.keras` file
            (`model.save`, e.g. written by `python -m lps_keras.convert` or `train.py`), of
            the same architecture. A missing file raises `FileNotFoundError`; a file of
            another architecture (other depth, class count, downsampler or scorer) raises
            `ValueError`.

    Returns:
        A functional `keras.Model` returning logits (by default), probabilities (with
        `classifier_activation`) or features (`include_top=False`).

    Example:

    >>> model = resnet(20, num_classes=10, input_shape=(32, 32, 3), stem="cifar",
    ...                downsampling="lps")
    >>> model(keras.random.normal((2, 32, 32, 3)), training=False).shape
    TensorShape([2, 10])
    """
    spec = resolve_sampling(sampling, resnet, locals())
    _check_head_arguments(include_top, pooling, classifier_activation)
    inputs, model_inputs = _resolve_input(input_tensor, input_shape)
    x, _, _ = resnet_features(inputs, depth, stem, sampling=spec)
    if include_top:
        x = InvariantGlobalAveragePooling2D(name="avg_pool")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="dropout")(x)
        kernel_init, bias_init = ConvFactory.from_spec(spec).dense_initializers(x.shape[-1])
        x = keras.layers.Dense(num_classes, kernel_initializer=kernel_init,
                               bias_initializer=bias_init, name="logits")(x)
        if classifier_activation is not None:
            x = keras.layers.Activation(classifier_activation, dtype="float32",
                                        name="predictions")(x)
    elif pooling == "avg":
        x = InvariantGlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    model = keras.Model(model_inputs, x, name=name or f"resnet{depth}_{spec.downsampling}")
    if weights is not None:
        load_weights_file(model, weights)
    return model


def _check_head_arguments(include_top, pooling, classifier_activation):
    """Refuses combinations `keras.applications` would silently ignore."""
    if pooling not in POOLINGS:
        raise ValueError(f"`pooling` must be one of {POOLINGS}; got {pooling!r}.")
    if include_top and pooling == "max":
        raise ValueError(
            "`pooling='max'` needs `include_top=False`; the classifier head pools by the "
            "(exact) global average."
        )
    if classifier_activation is not None:
        if not include_top:
            raise ValueError(
                "`classifier_activation` needs `include_top=True` (there is no classifier "
                f"without the top); got {classifier_activation!r}."
            )
        keras.activations.get(classifier_activation)  # unknown names raise here


def _resolve_input(input_tensor, input_shape):
    """`(tensor the body is built on, the model's inputs)`."""
    if input_tensor is None:
        inputs = keras.Input(input_shape or (None, None, 3), name="images")
        return inputs, inputs
    if not isinstance(input_tensor, keras.KerasTensor):
        raise TypeError(
            "`input_tensor` must be a Keras tensor (`keras.Input(...)` or a layer's "
            f"output in a functional model); got {type(input_tensor).__name__}."
        )
    shape = tuple(input_tensor.shape[1:])
    if len(shape) != 3:
        raise ValueError(f"`input_tensor` must be `[B, H, W, C]`; got shape "
                         f"{tuple(input_tensor.shape)}.")
    if input_shape is not None and (len(tuple(input_shape)) != 3 or any(
            a is not None and b is not None and a != b
            for a, b in zip(tuple(input_shape), shape, strict=True))):
        raise ValueError(f"`input_shape={tuple(input_shape)}` contradicts the shape of "
                         f"`input_tensor`, {tuple(input_tensor.shape)}.")
    return input_tensor, keras.utils.get_source_inputs(input_tensor)


def _count_stored_arrays(path):
    """How many arrays a `.weights.h5` or `.keras` file stores (None if unknown)."""
    import h5py

    def count(h5file):
        found = []
        h5file.visititems(lambda name, obj: found.append(name)
                          if isinstance(obj, h5py.Dataset) else None)
        return len(found)

    if path.endswith(".keras"):
        with zipfile.ZipFile(path) as archive:
            if "model.weights.h5" not in archive.namelist():
                return None
            with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as f:
                return count(f)
    with h5py.File(path, "r") as f:
        return count(f)


def load_weights_file(model, path):
    """Loads a local `.weights.h5` or `.keras` file into `model`, all or nothing.

    Raises `FileNotFoundError` for a missing file and `ValueError` for an unsupported
    suffix, an unreadable file, or one that does not fit the model (Keras alone loads a
    file with extra arrays, e.g. an LPS ResNet's into an APS one, without a word).
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(
            "`weights` must be None or the path of a local `.weights.h5` or `.keras` file "
            f"(nothing is downloaded); got {type(path).__name__}."
        )
    path = os.fspath(path)
    if not path.endswith(WEIGHTS_SUFFIXES):
        raise ValueError(
            f"`weights` must be None or a local file ending in {' or '.join(WEIGHTS_SUFFIXES)}"
            f" (nothing is downloaded); got {path!r}."
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Weights file not found: {path!r}.")
    where = f"The weights file {path!r} does not fit model {model.name!r}"
    try:
        stored = _count_stored_arrays(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise ValueError(f"Cannot read weights file {path!r}: {e}") from e
    if stored is not None and stored != len(model.weights):
        raise ValueError(
            f"{where}: it stores {stored} arrays, the model has {len(model.weights)} "
            "variables. Build the model with the settings the file was saved from "
            "(depth, stem, num_classes, downsampling, antialias, logits_channels, ...)."
        )
    try:
        model.load_weights(path)
    except ValueError as e:
        raise ValueError(f"{where} (same settings as when it was saved?): {e}") from e


def _named(depth):
    def builder(num_classes=1000, input_shape=None, **kwargs):
        return resnet(depth, num_classes=num_classes, input_shape=input_shape, **kwargs)

    builder.__name__ = f"resnet{depth}"
    builder.__doc__ = f"ResNet-{depth}; arguments as in `resnet`."
    return builder


resnet18 = _named(18)
resnet34 = _named(34)
resnet50 = _named(50)
resnet101 = _named(101)
resnet20 = _named(20)
resnet56 = _named(56)


@keras.saving.register_keras_serializable(package="lps_keras")
class ResNetBackbone(keras.Model):
    """The ResNet body as a model: images to the last feature map, with its taps.

    A functional model built in `__init__` (keras-hub style), so it saves to `.keras` by its
    constructor arguments. `deeplabv3plus(backbone=...)` accepts one.

    Args:
        depth, stem, sampling: as in `resnet` (`sampling`: a `SamplingSpec`, its
            `to_dict()`, or None for the defaults: strided).
        input_shape: `(H, W, C)`; default `(None, None, 3)`.
        output_stride: as in `resnet_features`.
        **kwargs: `keras.Model` arguments (`name`, `trainable`).

    Attributes:
        pyramid_outputs: dict from total stride (1, 2, 4, ...) to the last feature map at
            that stride (Keras tensors of this model's graph).
        probs: dict from total stride to the selection of the downsampler that produced it
            (APS/LPS only).
        sampling: the `SamplingSpec`.

    Example:

    >>> from lps_keras.models import SamplingSpec
    >>> backbone = ResNetBackbone(18, input_shape=(64, 64, 3),
    ...                           sampling=SamplingSpec(downsampling="lps"))
    >>> sorted(backbone.pyramid_outputs), sorted(backbone.probs)
    ([2, 4, 8, 16, 32], [2, 4, 8, 16, 32])
    """

    def __init__(self, depth, input_shape=(None, None, 3), stem="imagenet", output_stride=None,
                 sampling=None, **kwargs):
        spec = SamplingSpec.coerce(sampling)
        inputs = keras.Input(tuple(input_shape), name="images")
        x, features, probs = resnet_features(inputs, depth, stem, output_stride=output_stride,
                                             sampling=spec)
        kwargs.setdefault("name", f"resnet{depth}_backbone_{spec.downsampling}")
        super().__init__(inputs=inputs, outputs=x, **kwargs)
        self.depth = depth
        self.image_shape = tuple(input_shape)
        self.stem = stem
        self.output_stride = output_stride
        self.sampling = spec
        self.pyramid_outputs = features
        self.probs = probs

    def get_config(self):
        return {
            "depth": self.depth, "input_shape": list(self.image_shape), "stem": self.stem,
            "output_stride": self.output_stride, "sampling": self.sampling.to_dict(),
            "name": self.name, "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

