"""Logits models ("scorers") that rate each polyphase component for LPS.

Every scorer maps components `[B, K, h, w, C]` to logits `[B, K]` in float64. Weights are
shared across components, convolutions pad circularly and features are pooled globally, so
each component's score is invariant to circular shifts of that component; `attention` and
`graph` mix components only through permutation-equivariant operations. Together this makes
the logits permute exactly as the components do when the input is shifted.

"Exactly" holds bit for bit: per-pixel features run in float32 (the same arithmetic at
every pixel), and the global pooling, which a shift makes add pixels in another order, runs
in float64 together with everything after it (see `reductions`).
"""

import keras
from keras import ops

from lps_keras.layers import _validation
from lps_keras.layers.padding import pad2d
from lps_keras.layers.reductions import SELECTION_DTYPE, invariant_mean, set_softmax, set_sum

SCORERS = ("conv", "conv_skip", "attention", "attention_bn", "graph", "perceptron")


class _Scorer(keras.layers.Layer):
    """Base: runs per-component layers on `[B*K, h, w, C]` in float32 (or float64), then
    pools and scores in float64."""

    def __init__(self, hidden_channels=None, padding_mode="circular", **kwargs):
        kwargs.setdefault("dtype", "float32")  # logits in float32 under mixed precision
        super().__init__(**kwargs)
        self.hidden_channels = hidden_channels
        self.padding_mode = padding_mode

    def _conv(self, filters, kernel_size, name, use_bias=True):
        return keras.layers.Conv2D(
            filters, kernel_size, padding="valid", use_bias=use_bias,
            dtype=self.dtype_policy, name=name,
        )

    def _head(self, name="head"):
        # No bias: a constant added to every logit cancels in the softmax (zero gradient).
        return keras.layers.Dense(1, use_bias=False, dtype=self.dtype_policy, name=name)

    def _apply_conv(self, conv, x):
        k = conv.kernel_size[0]
        if k > 1:
            x = pad2d(x, (((k - 1) // 2, k // 2), ((k - 1) // 2, k // 2)), self.padding_mode)
        return conv(x)

    def _conv_then_mean(self, conv, x):
        """Global mean `[N]` (float64) of `conv(pad(x))`, for a bias-free one-filter conv.

        Computed as the pixel mean of `x` times the kernel summed over its taps. This is
        exact when the conv is 1x1, or when padding is circular: then each tap sees every
        pixel once. It gives the same logits without a one-filter convolution, which conv
        backends run slowly. Other paddings still run the conv.

        The per-pixel product with the summed taps (a matrix-vector product over channels,
        the same arithmetic at every pixel) comes first, so only one value per pixel is
        summed in float64, not every channel.
        """
        if conv.kernel_size[0] > 1 and self.padding_mode != "circular":
            return invariant_mean(self._apply_conv(conv, x), axis=(1, 2, 3))
        taps = ops.sum(ops.cast(conv.kernel, x.dtype), axis=(0, 1))  # [C, 1]
        per_pixel = ops.matmul(ops.reshape(x, (-1, x.shape[-1])), taps)
        return invariant_mean(ops.reshape(per_pixel, (ops.shape(x)[0], -1)), axis=1)

    @staticmethod
    def _dense(layer, x):
        """`layer(x)` for a Dense layer, in float64 (its weights cast up)."""
        y = ops.matmul(x, ops.cast(layer.kernel, SELECTION_DTYPE))
        if layer.use_bias:
            y = y + ops.cast(layer.bias, SELECTION_DTYPE)
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
        """`conv1` (input -> width, with bias) and the bias-free one-filter head `conv2`,
        both `kernel_size` x `kernel_size`."""
        width = self._width(components_shape[-1])
        self.conv1 = self._conv(width, kernel_size, "conv1")
        self.conv2 = self._conv(1, kernel_size, "conv2", use_bias=False)
        self.conv1.build(self._flat_shape(components_shape))
        self.conv2.build(self._flat_shape(components_shape, width))

    def _width(self, channels):
        return channels if self.hidden_channels is None else self.hidden_channels

    def get_config(self):
        config = super().get_config()
        config.update(
            {"hidden_channels": self.hidden_channels, "padding_mode": self.padding_mode}
        )
        return config


@keras.saving.register_keras_serializable(package="lps_keras")
class ConvScorer(_Scorer):
    """3x3 conv, ReLU, 3x3 conv to one channel, global mean (the LPS default)."""

    def build(self, components_shape):
        self._build_hidden_and_head(components_shape, 3)

    def call(self, components):
        k = components.shape[1]
        x = self._flatten(components)
        x = ops.relu(self._apply_conv(self.conv1, x))
        return ops.reshape(self._conv_then_mean(self.conv2, x), (-1, k))


@keras.saving.register_keras_serializable(package="lps_keras")
class ConvSkipScorer(_Scorer):
    """Residual 3x3 conv block (width = input channels), ReLU, 1x1 conv, global mean."""

    def build(self, components_shape):
        c = components_shape[-1]
        if self.hidden_channels is not None and self.hidden_channels != c:
            raise ValueError(
                f"The 'conv_skip' scorer adds its input to a residual branch, so "
                f"`hidden_channels` ({self.hidden_channels}) must equal the input channels "
                f"({c}); use hidden_channels=None or {c}, or pick the 'conv' scorer."
            )
        self.conv1 = self._conv(c, 3, "conv1")
        self.conv2 = self._conv(c, 3, "conv2")
        self.head = self._conv(1, 1, "head", use_bias=False)
        for layer in (self.conv1, self.conv2, self.head):
            layer.build(self._flat_shape(components_shape))

    def call(self, components):
        k = components.shape[1]
        x = self._flatten(components)
        h = self._apply_conv(self.conv2, ops.relu(self._apply_conv(self.conv1, x)))
        return ops.reshape(self._conv_then_mean(self.head, ops.relu(x + h)), (-1, k))


@keras.saving.register_keras_serializable(package="lps_keras")
class PerceptronScorer(_Scorer):
    """Per-pixel perceptron (1x1 conv, ReLU, 1x1 conv to one channel), global mean."""

    def build(self, components_shape):
        self._build_hidden_and_head(components_shape, 1)

    def call(self, components):
        k = components.shape[1]
        x = ops.relu(self.conv1(self._flatten(components)))
        return ops.reshape(self._conv_then_mean(self.conv2, x), (-1, k))


class _SetScorer(_Scorer):
    """Embeds each component to a vector, then mixes the set of K vectors."""

    use_batch_norm = False

    def _build_embedding(self, components_shape):
        width = self._width(components_shape[-1])
        self.embed = self._conv(width, 3, "embed")
        self.embed.build(self._flat_shape(components_shape))
        if self.use_batch_norm:
            self.embed_norm = keras.layers.BatchNormalization(
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
        self.query = keras.layers.Dense(width, dtype=self.dtype_policy, name="query")
        # Key bias would add a per-query constant to the scores: cancels in the softmax.
        self.key = keras.layers.Dense(width, use_bias=False, dtype=self.dtype_policy,
                                      name="key")
        self.value = keras.layers.Dense(width, dtype=self.dtype_policy, name="value")
        self.head = self._head()
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
    """`AttentionScorer` with batch normalisation after the conv embedding."""

    use_batch_norm = True


@keras.saving.register_keras_serializable(package="lps_keras")
class GraphScorer(_SetScorer):
    """One round of message passing over the complete graph of components.

    Node k gets `relu(W_self e_k + W_msg mean_{j != k} e_j)`, then a linear read-out.
    """

    def build(self, components_shape):
        width = self._build_embedding(components_shape)
        self.self_update = keras.layers.Dense(width, dtype=self.dtype_policy, name="self")
        self.message = keras.layers.Dense(
            width, use_bias=False, dtype=self.dtype_policy, name="message"
        )
        self.head = self._head()
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


def get_scorer(name, hidden_channels=None, padding_mode="circular", dtype="float32"):
    """Builds the scorer named `name` (one of `SCORERS`)."""
    if name not in _BY_NAME:
        raise ValueError(f"`logits_model` must be one of {SCORERS}; got {name!r}.")
    hidden_channels = _validation.check_positive_int(
        "hidden_channels", hidden_channels, optional=True)
    return _BY_NAME[name](
        hidden_channels=hidden_channels, padding_mode=padding_mode, name="logits_model",
        dtype=dtype,
    )
