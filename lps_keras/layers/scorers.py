"""Logits models ("scorers") that rate each polyphase component for LPS.

Every scorer maps components `[B, K, h, w, C]` to logits `[B, K]` in float64. Weights are
shared across components, convolutions pad circularly and features are pooled globally, so
each component's score is invariant to circular shifts of that component; `attention` and
`graph` mix components only through permutation-equivariant operations. Together this makes
the logits permute exactly as the components do when the input is shifted.

"Exactly" holds bit for bit: per-pixel features run in float32 (the same arithmetic at
every pixel), and the global pooling, which a shift makes add pixels in another order, runs
in float64 together with everything after it (see `reductions`).

Options that match the official code (raymondyeh07/learnable_polyphase_sampling,
`layers/lps_logit_layers.py`; see docs/official_code.md):

- `head="official"` (conv, conv_skip, perceptron): the official last layer. `conv`:
  conv3x3 h->h with bias, then the mean over channels and pixels (`LPSLogitLayersV2`);
  `conv_skip`: the same plus the input, no ReLU after the sum (`LPSLogitLayersSkip`);
  `perceptron`: one 1x1 conv C->1 with bias, pixel mean (`ComponentPerceptron`, no hidden
  layer: `hidden_channels` is unused). The mean over the h output channels of a conv is
  the conv with the mean filter and mean bias, so the official head runs on the same
  pooled fast path (the mean filter is taken inside `call`, so every one of the h filters
  gets its gradient, as in PyTorch). `head="single"` (default) is this library's bias-free
  one-filter head: the same function class, a different parametrisation under SGD.
- `init="torch"`: PyTorch's default initialisation of every conv and dense layer of the
  scorer (`initializers.TorchUniform`): kernels and biases `U(-1/sqrt(fan_in),
  1/sqrt(fan_in))`. `init="keras"` (default): Keras' glorot-uniform kernels, zero biases.
- `AttentionBNScorer(bn_epsilon=1e-5, bn_momentum=0.9)`: PyTorch's BatchNorm defaults.
"""

import keras
from keras import ops

from lps_keras.layers import _validation
from lps_keras.layers.initializers import TorchUniform
from lps_keras.layers.padding import pad2d
from lps_keras.layers.reductions import (
    invariant_mean,
    mean,
    selection_dtype,
    set_softmax,
    set_sum,
)

SCORERS = ("conv", "conv_skip", "attention", "attention_bn", "graph", "perceptron")
HEADS = ("single", "official")
INITS = ("keras", "torch")
# Scorers whose official last layer `head="official"` reproduces.
OFFICIAL_HEAD_SCORERS = ("conv", "conv_skip", "perceptron")


class _Scorer(keras.layers.Layer):
    """Base: runs per-component layers on `[B*K, h, w, C]` in float32 (or float64), then
    pools and scores in float64."""

    supports_official_head = False

    def __init__(self, hidden_channels=None, padding_mode="circular", head="single",
                 init="keras", **kwargs):
        kwargs.setdefault("dtype", "float32")  # logits in float32 under mixed precision
        super().__init__(**kwargs)
        self.hidden_channels = hidden_channels
        self.padding_mode = padding_mode
        self.head_type = _validation.check_choice("head", head, HEADS)
        self.init = _validation.check_choice("init", init, INITS)
        if head == "official" and not self.supports_official_head:
            raise ValueError(
                f"`head='official'` exists for the scorers {OFFICIAL_HEAD_SCORERS} (whose "
                f"official last layer differs from ours only in its parametrisation); "
                f"{self.__class__.__name__}'s official counterpart differs in structure. "
                "Use head='single' with this scorer."
            )

    def _initializers(self, fan_in):
        """Initializer arguments of a conv/dense layer with `fan_in` inputs per output."""
        if self.init == "torch":
            return {"kernel_initializer": TorchUniform(),
                    "bias_initializer": TorchUniform(fan_in=fan_in)}
        return {}

    def _conv(self, filters, kernel_size, name, in_channels, use_bias=True):
        return keras.layers.Conv2D(
            filters, kernel_size, padding="valid", use_bias=use_bias,
            dtype=self.dtype_policy, name=name,
            **self._initializers(in_channels * kernel_size * kernel_size),
        )

    def _dense_layer(self, units, name, in_features, use_bias=True):
        return keras.layers.Dense(units, use_bias=use_bias, dtype=self.dtype_policy,
                                  name=name, **self._initializers(in_features))

    def _head(self, in_features, name="head"):
        # No bias: a constant added to every logit cancels in the softmax (zero gradient).
        return self._dense_layer(1, name, in_features, use_bias=False)

    def _apply_conv(self, conv, x):
        k = conv.kernel_size[0]
        if k > 1:
            x = pad2d(x, (((k - 1) // 2, k // 2), ((k - 1) // 2, k // 2)), self.padding_mode)
        return conv(x)

    def _conv_then_mean(self, conv, x, skip=None):
        """Global mean `[N]` (float64) over pixels and output channels of `conv(pad(x))`
        (plus `skip`, a map with x's spatial size, when given: the official residual).

        Computed as the pixel mean of `x` times the kernel summed over its taps (and
        averaged over its output filters, plus the mean bias, when it has several: the
        mean over output channels of a conv is the conv with the mean filter). This is
        exact when the conv is 1x1, or when padding is circular: then each tap sees every
        pixel once. It gives the same logits without a one-filter convolution, which conv
        backends run slowly. Other paddings still run the conv.

        The per-pixel product with the summed taps (a matrix-vector product over channels,
        the same arithmetic at every pixel) comes first, so only one value per pixel is
        summed in float64, not every channel.
        """
        if conv.kernel_size[0] > 1 and self.padding_mode != "circular":
            y = self._apply_conv(conv, x)
            if skip is not None:
                y = y + skip
            return invariant_mean(y, axis=(1, 2, 3))
        taps = ops.sum(ops.cast(conv.kernel, x.dtype), axis=(0, 1))  # [C, filters]
        if conv.filters > 1:
            taps = mean(taps, axis=-1, keepdims=True)  # [C, 1]
        if skip is not None:  # + mean over skip's channels, in the same matvec
            c = skip.shape[-1]
            x = ops.concatenate([x, skip], axis=-1)
            taps = ops.concatenate([taps, ops.full((c, 1), 1.0 / c, dtype=x.dtype)], axis=0)
        per_pixel = ops.matmul(ops.reshape(x, (-1, x.shape[-1])), taps)
        shape = ops.shape(x)
        # The batch as -1, not the pixels: an empty batch leaves nothing to infer -1 from.
        pooled = invariant_mean(ops.reshape(per_pixel, (-1, shape[1] * shape[2])), axis=1)
        if conv.use_bias:
            pooled = pooled + invariant_mean(conv.bias)
        return pooled

    @staticmethod
    def _dense(layer, x):
        """`layer(x)` for a Dense layer, in float64 (its weights cast up)."""
        y = ops.matmul(x, ops.cast(layer.kernel, selection_dtype()))
        if layer.use_bias:
            y = y + ops.cast(layer.bias, selection_dtype())
        return y

    @staticmethod
    def _flatten(components):
        shape = ops.shape(components)
        return ops.reshape(components, (-1, shape[2], shape[3], components.shape[4]))

    @staticmethod
    def _flat_shape(components_shape, channels=None):
        # Spatial sizes left unknown: convs see padded inputs, and only channels matter.
        c = components_shape[-1]
        return (None, None, None, c if channels is None else channels)

    def _build_hidden_and_head(self, components_shape, kernel_size):
        """`conv1` (input -> width, with bias) and the head `conv2`, both `kernel_size` x
        `kernel_size`: one filter without bias, or (`head="official"`) width filters with
        bias whose outputs are averaged."""
        c = components_shape[-1]
        width = self._width(c)
        self.conv1 = self._conv(width, kernel_size, "conv1", c)
        if self.head_type == "official":
            self.conv2 = self._conv(width, kernel_size, "conv2", width)
        else:
            self.conv2 = self._conv(1, kernel_size, "conv2", width, use_bias=False)
        self.conv1.build(self._flat_shape(components_shape))
        self.conv2.build(self._flat_shape(components_shape, width))

    def _width(self, channels):
        return channels if self.hidden_channels is None else self.hidden_channels

    def get_config(self):
        config = super().get_config()
        config.update(
            {"hidden_channels": self.hidden_channels, "padding_mode": self.padding_mode,
             "head": self.head_type, "init": self.init}
        )
        return config


@keras.saving.register_keras_serializable(package="lps_keras")
class ConvScorer(_Scorer):
    """3x3 conv, ReLU, 3x3 conv to one channel, global mean (the LPS default).

    `head="official"`: the last conv has `hidden` filters with bias and the mean runs over
    them too, as the official `LPSLogitLayersV2` (logits differ from a one-filter head by
    a constant for the mean filter; the training dynamics differ)."""

    supports_official_head = True

    def build(self, components_shape):
        self._build_hidden_and_head(components_shape, 3)

    def call(self, components):
        k = components.shape[1]
        x = self._flatten(components)
        x = ops.relu(self._apply_conv(self.conv1, x))
        return ops.reshape(self._conv_then_mean(self.conv2, x), (-1, k))


@keras.saving.register_keras_serializable(package="lps_keras")
class ConvSkipScorer(_Scorer):
    """Residual 3x3 conv block (width = input channels), ReLU, 1x1 conv, global mean.

    `head="official"` (`LPSLogitLayersSkip`): `mean(conv2(relu(conv1(x))) + x)` over
    channels and pixels, with conv2 keeping its bias; no ReLU after the sum, no 1x1 conv.
    """

    supports_official_head = True

    def build(self, components_shape):
        c = components_shape[-1]
        if self.hidden_channels is not None and self.hidden_channels != c:
            raise ValueError(
                f"The 'conv_skip' scorer adds its input to a residual branch, so "
                f"`hidden_channels` ({self.hidden_channels}) must equal the input channels "
                f"({c}); use hidden_channels=None or {c}, or pick the 'conv' scorer."
            )
        self.conv1 = self._conv(c, 3, "conv1", c)
        self.conv2 = self._conv(c, 3, "conv2", c)
        layers = [self.conv1, self.conv2]
        if self.head_type == "single":
            self.head = self._conv(1, 1, "head", c, use_bias=False)
            layers.append(self.head)
        for layer in layers:
            layer.build(self._flat_shape(components_shape))

    def call(self, components):
        k = components.shape[1]
        x = self._flatten(components)
        hidden = ops.relu(self._apply_conv(self.conv1, x))
        if self.head_type == "official":
            return ops.reshape(self._conv_then_mean(self.conv2, hidden, skip=x), (-1, k))
        h = self._apply_conv(self.conv2, hidden)
        return ops.reshape(self._conv_then_mean(self.head, ops.relu(x + h)), (-1, k))


@keras.saving.register_keras_serializable(package="lps_keras")
class PerceptronScorer(_Scorer):
    """Per-pixel perceptron (1x1 conv, ReLU, 1x1 conv to one channel), global mean.

    `head="official"` (`ComponentPerceptron`): a single 1x1 conv to one channel with bias,
    then the pixel mean; no hidden layer, so `hidden_channels` is unused."""

    supports_official_head = True

    def build(self, components_shape):
        if self.head_type == "official":
            c = components_shape[-1]
            self.conv1 = self._conv(1, 1, "conv1", c)
            self.conv1.build(self._flat_shape(components_shape))
            return
        self._build_hidden_and_head(components_shape, 1)

    def call(self, components):
        k = components.shape[1]
        x = self._flatten(components)
        if self.head_type == "official":
            return ops.reshape(self._conv_then_mean(self.conv1, x), (-1, k))
        x = ops.relu(self.conv1(x))
        return ops.reshape(self._conv_then_mean(self.conv2, x), (-1, k))


class _SetScorer(_Scorer):
    """Embeds each component to a vector, then mixes the set of K vectors."""

    use_batch_norm = False

    def _build_embedding(self, components_shape):
        c = components_shape[-1]
        width = self._width(c)
        self.embed = self._conv(width, 3, "embed", c)
        self.embed.build(self._flat_shape(components_shape))
        if self.use_batch_norm:
            self.embed_norm = keras.layers.BatchNormalization(
                epsilon=self.bn_epsilon, momentum=self.bn_momentum,
                dtype=self.dtype_policy, name="embed_norm"
            )
            self.embed_norm.build(self._flat_shape(components_shape, width))
        return width

    def _embed(self, components, training):
        k = components.shape[1]
        x = self._apply_conv(self.embed, self._flatten(components))
        if self.use_batch_norm:
            x = self.embed_norm(x, training=training)
        x = invariant_mean(ops.relu(x), axis=(1, 2))
        return ops.reshape(x, (-1, k, x.shape[-1]))


@keras.saving.register_keras_serializable(package="lps_keras")
class AttentionScorer(_SetScorer):
    """Conv embedding per component, then single-head self-attention over the K components.

    No positional encoding: attention is permutation-equivariant, which the shift law needs.
    """

    def build(self, components_shape):
        width = self._build_embedding(components_shape)
        self.query = self._dense_layer(width, "query", width)
        # Key bias would add a per-query constant to the scores: cancels in the softmax.
        self.key = self._dense_layer(width, "key", width, use_bias=False)
        self.value = self._dense_layer(width, "value", width)
        self.head = self._head(width)
        for layer in (self.query, self.key, self.value, self.head):
            layer.build((None, components_shape[1], width))

    def call(self, components, training=None):
        e = self._embed(components, training)
        scores = ops.einsum("bqd,bkd->bqk", self._dense(self.query, e), self._dense(self.key, e))
        attn = set_softmax(scores / float(e.shape[-1]) ** 0.5, axis=-1)
        # Sum over the components k in an order a shift cannot change.
        h = e + set_sum(attn[:, :, :, None] * self._dense(self.value, e)[:, None], axis=2)
        return ops.squeeze(self._dense(self.head, ops.relu(h)), axis=-1)


@keras.saving.register_keras_serializable(package="lps_keras")
class AttentionBNScorer(AttentionScorer):
    """`AttentionScorer` with batch normalisation after the conv embedding.

    Args (besides the scorer arguments):
        bn_epsilon: BatchNormalization epsilon (default 1e-3, Keras' default; the official
            `SAInner_bn` uses PyTorch's 1e-5).
        bn_momentum: BatchNormalization momentum (default 0.99, Keras' default; PyTorch's
            momentum 0.1 of the official code is 0.9 here).

    The official `SAInner_bn` differs in structure too (separate two-conv networks for
    query, key and value; BN after the ReLU): only the BN constants are matched here.
    """

    use_batch_norm = True

    def __init__(self, hidden_channels=None, padding_mode="circular", bn_epsilon=1e-3,
                 bn_momentum=0.99, **kwargs):
        super().__init__(hidden_channels=hidden_channels, padding_mode=padding_mode,
                         **kwargs)
        self.bn_epsilon = _validation.check_positive_number("bn_epsilon", bn_epsilon)
        self.bn_momentum = _validation.check_unit_interval("bn_momentum", bn_momentum)

    def get_config(self):
        config = super().get_config()
        config.update({"bn_epsilon": self.bn_epsilon, "bn_momentum": self.bn_momentum})
        return config


@keras.saving.register_keras_serializable(package="lps_keras")
class GraphScorer(_SetScorer):
    """One round of message passing over the complete graph of components.

    Node k gets `relu(W_self e_k + W_msg mean_{j != k} e_j)`, then a linear read-out.
    """

    def build(self, components_shape):
        width = self._build_embedding(components_shape)
        self.self_update = self._dense_layer(width, "self", width)
        self.message = self._dense_layer(width, "message", width, use_bias=False)
        self.head = self._head(width)
        for layer in (self.self_update, self.message, self.head):
            layer.build((None, components_shape[1], width))

    def call(self, components, training=None):
        e = self._embed(components, training)
        k = e.shape[1]
        others = (set_sum(e, axis=1, keepdims=True) - e) / float(max(k - 1, 1))
        h = ops.relu(self._dense(self.self_update, e) + self._dense(self.message, others))
        return ops.squeeze(self._dense(self.head, h), axis=-1)


_BY_NAME = {
    "conv": ConvScorer,
    "conv_skip": ConvSkipScorer,
    "attention": AttentionScorer,
    "attention_bn": AttentionBNScorer,
    "graph": GraphScorer,
    "perceptron": PerceptronScorer,
}


def get_scorer(name, hidden_channels=None, padding_mode="circular", dtype="float32",
               head="single", init="keras", bn_epsilon=1e-3, bn_momentum=0.99):
    """Builds the scorer named `name` (one of `SCORERS`).

    `head`, `init`: see the module docstring. `bn_epsilon`, `bn_momentum`: BatchNorm
    constants of `attention_bn` (validated, and unused by the other scorers)."""
    if name not in _BY_NAME:
        raise ValueError(f"`logits_model` must be one of {SCORERS}; got {name!r}.")
    hidden_channels = _validation.check_positive_int(
        "hidden_channels", hidden_channels, optional=True)
    bn_epsilon = _validation.check_positive_number("bn_epsilon", bn_epsilon)
    bn_momentum = _validation.check_unit_interval("bn_momentum", bn_momentum)
    kwargs = {}
    if getattr(_BY_NAME[name], "use_batch_norm", False):
        kwargs = {"bn_epsilon": bn_epsilon, "bn_momentum": bn_momentum}
    return _BY_NAME[name](
        hidden_channels=hidden_channels, padding_mode=padding_mode, name="logits_model",
        dtype=dtype, head=head, init=init, **kwargs,
    )
