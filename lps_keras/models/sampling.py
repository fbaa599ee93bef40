"""The network-wide sampling settings of a model builder, held and validated in one place.

`SamplingSpec` is what `resnet`, `resnet_features`, `deeplabv3plus` and `ResNetBackbone`
pass down; their keyword arguments (`downsampling=...`, `antialias=...`, ...) still work and
are turned into one spec at the top of each call (`resolve_sampling`).
"""

import dataclasses
import inspect

from lps_keras.layers import get_antialias
from lps_keras.layers._validation import check_choice
from lps_keras.layers.downsampling import NORMS as APS_NORMS

DOWNSAMPLING = ("strided", "maxpool", "blurpool", "aps", "lps")
# The plain (fixed-grid, unblurred) downsampler of each family: ResNets stride their convs,
# U-Nets max-pool.
RESNET_DOWNSAMPLING = ("strided", "blurpool", "aps", "lps")
UNET_DOWNSAMPLING = ("maxpool", "blurpool", "aps", "lps")

PADDING_MODES = ("circular", "zeros")

# "keras": he_normal convs, glorot_uniform dense. "torch": what the papers' PyTorch models
# use: convs kaiming_normal (fan_out, ReLU gain), dense layers PyTorch's default.
INITS = ("keras", "torch")
BATCH_NORMS = ("keras", "torch")

# Default LPS scorer width: a quarter of the downsampler's input channels, at least 8. A
# full-width conv scorer costs as much as the conv it follows (LPS ResNet-18 on CIFAR at 2.1x
# the strided MACs); a quarter keeps it at 1.5x. Width never affects the invariance.
AUTO_WIDTH_DIVISOR = 4
AUTO_WIDTH_MIN = 8
# The default LPS scorer width of every model builder (`resnet`, `deeplabv3plus`, blocks).
DEFAULT_LOGITS_CHANNELS = "auto"


def scorer_width(logits_channels, in_channels):
    """Resolves a model-level scorer width (`"auto"`, None or an int) for one downsampler."""
    if logits_channels == "auto":
        return max(AUTO_WIDTH_MIN, in_channels // AUTO_WIDTH_DIVISOR)
    if logits_channels is None:
        return None  # the layer's default: the input channels
    if isinstance(logits_channels, bool) or not isinstance(logits_channels, int) \
            or logits_channels < 1:
        raise ValueError(
            f"A scorer width must be 'auto', None (input channels) or a positive int; got "
            f"{logits_channels!r}."
        )
    return logits_channels


def _is_one_width(logits_channels):
    return logits_channels is None or isinstance(logits_channels, (int, str))


@dataclasses.dataclass(frozen=True)
class SamplingSpec:
    """How every downsampler, conv and batch norm of a model is made.

    Args:
        downsampling: `"strided"` (ResNets) or `"maxpool"` (U-Nets), the plain baselines;
            `"blurpool"`, `"aps"` or `"lps"`.
        antialias: None or `"lowpassN"`/`"ddacN"`, applied inside every APS/LPS
            downsampler (with `"blurpool"`, N sets the blur size; default 3).
        padding_mode: `"circular"` (exact invariance) or `"zeros"` for every spatial conv.
        logits_model: LPS scorer name.
        logits_channels: LPS scorer width: `"auto"`, None (input channels), an int, or one
            value per stage (a tuple; models check the count against their depth).
        lps_kwargs: extra `LPSDownsampling2D` arguments (tau, train_mode, hard, seed, ...).
        sync_bn: use `BatchNormalization(synchronized=True)` (multi-replica training).
        score_unfiltered: with `antialias`, APS/LPS select on the unfiltered input and
            return the filtered one. A blur makes all components share one mean, so a
            scorer that is nearly linear (as at initialisation) sees near-ties whose
            winner is decided by rounding; scoring the raw input avoids that. The papers'
            code selects on the filtered input (False).
        stem_antialias: with `antialias`, whether the ImageNet stem's first downsampler
            (the one replacing conv1's stride) blurs too. The papers' code does not
            (False; LPS `maxpool_no_antialias`).
        conv1_stride: ImageNet stem: conv1 keeps its plain stride 2 and only the max-pool's
            stride is replaced by a downsampler (an ablation of the LPS paper). The model is
            then not shift invariant.
        maxpool_zpad: ImageNet stem: pad the 2x2 max-pool with zeros instead of in
            `padding_mode` (an ablation of the LPS paper; breaks exact invariance).
        maxpool_padding: ImageNet stem with APS/LPS: the padding mode of the 2x2 max-pool's
            extra row/column, `"circular"` or `"zeros"`; None (default) follows
            `maxpool_zpad`/`padding_mode`. The papers' code pads it circularly unless
            `maxpool_zpad`, also in its zero-padded networks (converted checkpoints set it).
        swap_conv_pool: in a stride-2 block, downsample after the 3x3 conv instead of
            before it (conv, downsample, BN; an ablation of the LPS paper).
        init: `"keras"` (he_normal convs, glorot_uniform dense) or `"torch"` (as the papers'
            PyTorch models: convs kaiming_normal with fan_out and the ReLU gain, BN (1, 0),
            the classifier PyTorch's default uniform kernel and bias).
        batch_norm: `"keras"` (`keras.layers.BatchNormalization`) or `"torch"`
            (`TorchBatchNormalization`: PyTorch's moving-variance update, with the unbiased
            batch variance; not with `sync_bn`).
        aps_norm: the APS criterion of every APS downsampler (`APSDownsampling2D`'s
            `norm`: `"l2"`, `"l1"`, `"linf"`, or the APS code's `"l2_min"`, `"l1_min"`,
            `"non_abs_max"`).
        antialias_kwargs: extra constructor arguments of the `antialias` layer, e.g.
            `{"softmax": "joint", "epsilon": 1e-5, "momentum": 0.9}` for the DDAC of the
            papers' code (see `DDAC2D`).

    Example:

    >>> spec = SamplingSpec(downsampling="lps", logits_channels=[8, 16, 32])
    >>> spec.logits_channels, spec.polyphase
    ((8, 16, 32), True)
    >>> SamplingSpec.from_dict(spec.to_dict()) == spec
    True
    """

    downsampling: str = "strided"
    antialias: str | None = None
    padding_mode: str = "circular"
    logits_model: str = "conv"
    logits_channels: object = DEFAULT_LOGITS_CHANNELS
    # A dict, so left out of the hash; compared as a dict.
    lps_kwargs: dict | None = dataclasses.field(default=None, hash=False)
    sync_bn: bool = False
    score_unfiltered: bool = True
    stem_antialias: bool = True
    conv1_stride: bool = False
    maxpool_zpad: bool = False
    maxpool_padding: str | None = None
    swap_conv_pool: bool = False
    init: str = "keras"
    batch_norm: str = "keras"
    aps_norm: str = "l2"
    antialias_kwargs: dict | None = dataclasses.field(default=None, hash=False)

    def __post_init__(self):
        check_choice("downsampling", self.downsampling, DOWNSAMPLING)
        check_choice("padding_mode", self.padding_mode, PADDING_MODES)
        check_choice("init", self.init, INITS)
        check_choice("aps_norm", self.aps_norm, APS_NORMS)
        check_choice("batch_norm", self.batch_norm, BATCH_NORMS)
        if self.batch_norm == "torch" and self.sync_bn:
            raise ValueError("`batch_norm='torch'` (PyTorch's moving-variance update) does not "
                             "support `sync_bn=True`; use batch_norm='keras' with sync_bn.")
        if self.maxpool_padding is not None:
            check_choice("maxpool_padding", self.maxpool_padding, PADDING_MODES)
            if self.maxpool_zpad and self.maxpool_padding != "zeros":
                raise ValueError("`maxpool_zpad=True` pads the max-pool with zeros; it "
                                 f"contradicts maxpool_padding={self.maxpool_padding!r}.")
        for flag in ("sync_bn", "score_unfiltered", "stem_antialias", "conv1_stride",
                     "maxpool_zpad", "swap_conv_pool"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"`{flag}` must be True or False; got "
                                 f"{getattr(self, flag)!r}.")
        object.__setattr__(self, "antialias_kwargs", dict(self.antialias_kwargs or {}))
        # Validate early, before any layer is made.
        get_antialias(self.antialias, **self.antialias_kwargs)
        if self.downsampling in ("strided", "maxpool") and self.antialias is not None:
            raise ValueError(
                "`antialias` needs a downsampler to act before: use downsampling='blurpool', "
                f"'aps' or 'lps' with antialias, or leave antialias=None for "
                f"{self.downsampling!r}."
            )
        widths = self.logits_channels
        if not _is_one_width(widths):
            widths = tuple(widths)
            object.__setattr__(self, "logits_channels", widths)
        for width in widths if isinstance(widths, tuple) else (widths,):
            scorer_width(width, 1)  # validate now, with a message naming the values
        object.__setattr__(self, "lps_kwargs", dict(self.lps_kwargs or {}))

    def check_family(self, family, choices):
        """Raises a ValueError if `downsampling` is not one of the `choices` of a model
        `family` (e.g. `"maxpool"` for a ResNet)."""
        if self.downsampling not in choices:
            raise ValueError(f"{family} models take downsampling in {choices}; got "
                             f"{self.downsampling!r}.")
        return self

    @property
    def polyphase(self):
        return self.downsampling in ("aps", "lps")

    @classmethod
    def field_names(cls):
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def stage_widths(self, num_stages):
        """Scorer width per stage from `"auto"`, None, one int, or one value per stage."""
        if _is_one_width(self.logits_channels):
            return [self.logits_channels] * num_stages
        if len(self.logits_channels) != num_stages:
            raise ValueError(
                f"`logits_channels` must be 'auto', None, an int or one value per stage "
                f"({num_stages} for this depth); got {self.logits_channels!r}."
            )
        return list(self.logits_channels)

    def to_dict(self):
        """Plain, JSON-ready values (for `get_config` and config files)."""
        config = {name: getattr(self, name) for name in self.field_names()}
        config["lps_kwargs"] = dict(self.lps_kwargs)
        config["antialias_kwargs"] = dict(self.antialias_kwargs)
        if isinstance(self.logits_channels, tuple):
            config["logits_channels"] = list(self.logits_channels)
        return config

    @classmethod
    def coerce(cls, sampling):
        """A `SamplingSpec` from a spec, its `to_dict()`, or None (the defaults)."""
        if sampling is None:
            return cls()
        return sampling if isinstance(sampling, cls) else cls.from_dict(sampling)

    @classmethod
    def from_dict(cls, config):
        unknown = sorted(set(config) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"{unknown} are not sampling settings: {list(cls.field_names())}.")
        return cls(**config)


def resolve_sampling(sampling, builder, arguments):
    """The one `SamplingSpec` of a call to a public `builder`.

    `arguments` are the builder's arguments (its `locals()` on entry). Without `sampling`
    (a `SamplingSpec` or its `to_dict()`), the spec is made of the keyword settings (the
    settings a builder has no keyword for keep their defaults); with it, every keyword
    setting must keep the builder's default. The settings of the papers' ablations
    (`stem_antialias`, `conv1_stride`, `maxpool_zpad`, `swap_conv_pool`, `init`) are
    given through `sampling` only.
    """
    settings = {name: arguments[name] for name in SamplingSpec.field_names()
                if name in arguments}
    if sampling is None:
        return SamplingSpec(**settings)
    sampling = SamplingSpec.coerce(sampling)
    parameters = inspect.signature(builder).parameters
    given = SamplingSpec(**settings)  # compared as normalised (lps_kwargs None == {})
    default = SamplingSpec(**{name: parameters[name].default for name in settings})
    both = [name for name in settings if getattr(given, name) != getattr(default, name)]
    if both:
        raise ValueError(
            f"Give the sampling settings either as `sampling` or as keywords, not both; "
            f"got `sampling` and {both}."
        )
    return sampling
