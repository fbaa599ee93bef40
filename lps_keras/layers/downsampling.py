"""Adaptive (APS) and learnable (LPS) polyphase downsampling."""

import keras
import numpy as np
from keras import ops

from lps_keras.layers import _validation
from lps_keras.layers._distribute import ReplicaSeedGenerator
from lps_keras.layers.antialias import get_antialias, serialize_antialias
from lps_keras.layers.polyphase import (
    component_norms,
    gather_component,
    pad_to_multiple,
    polyphase_split,
    select_weighted,
)
from lps_keras.layers.scorers import (
    HEADS,
    INITS,
    OFFICIAL_HEAD_SCORERS,
    SCORERS,
    get_scorer,
)

NORMS = ("l2", "l1", "linf", "l2_min", "l1_min", "non_abs_max")
# Criterion -> (statistic computed by `component_norms`, keep the smallest?).
_CRITERIA = {
    "l2": ("l2", False), "l1": ("l1", False), "linf": ("linf", False),
    "l2_min": ("l2", True), "l1_min": ("l1", True), "non_abs_max": ("max", False),
}


def _nan_to_neg_inf(scores):
    """`scores` with NaN replaced by -inf (the NaN policy of every selection here)."""
    return ops.where(ops.isnan(scores), float("-inf"), scores)


def _is_best(scores):
    """`[B, K]` mask of the components equal to their sample's best score (NaN counts as
    -inf, so a sample whose scores are all NaN has every component tied)."""
    scores = _nan_to_neg_inf(scores)
    return ops.equal(scores, _row_max(scores))


def _row_max(scores):
    # `initial=-inf` changes no value and lets an empty batch through (Keras refuses the
    # max of an empty tensor in eager mode).
    return ops.max(scores, axis=-1, keepdims=True, initial=float("-inf"))


def argmax(scores):
    """Per-sample index of the best of `scores` `[B, K]`, NaN counting as -inf; ties (all
    NaN included) go to the lowest index.

    The same index in eager, `tf.function` and XLA, and on every backend: a plain argmax
    is not, because TF and XLA order NaN differently (XLA's max even skips NaN where TF's
    returns it), and Keras' JAX argmax compares float64 in float32 (so float64 scores a
    float32 rounding apart tie there, and the lowest index wins).

    Built as the integer argmax of the mask of row maxima, in the scores' own dtype.
    Keras' TensorFlow argmax of floats emits `Bitcast`/`BitwiseAnd` (its -0.0 check),
    which TFLite builtins and onnxruntime reject; the integer one is a plain ArgMax. The
    index is the one TensorFlow's `ops.argmax` gives: scores narrower than float32 are
    compared in float32, -0.0 (and a negative subnormal) ranks just below +0.0, and
    subnormals otherwise count as zero, as TF's kernels see them (flushed here
    explicitly, because XLA does not flush float64 subnormals)."""
    ready = _argmax_ready(_nan_to_neg_inf(scores))
    return _lowest_index(ops.equal(ready, _row_max(ready)))


def _argmax_ready(scores):
    """`scores` (NaN-free) as TensorFlow's `ops.argmax` compares them, in float32 or
    float64, with subnormals and zeros made explicit: +0.0 and positive subnormals become
    +0.0, -0.0 and negative subnormals `-tiny` (the smallest normal number, below +0.0 and
    above every negative normal number). No bit operations, so it exports to TFLite/ONNX."""
    dtype = keras.backend.standardize_dtype(scores.dtype)
    if dtype not in ("float32", "float64"):
        dtype = "float32"
        scores = ops.cast(scores, dtype)
    # Constants built in `dtype` (a Python float would pass through float32 first,
    # where float64's tiny is 0).
    tiny = ops.convert_to_tensor(np.finfo(dtype).tiny, dtype)
    zero = ops.zeros_like(scores)
    small = ops.less(ops.abs(scores), tiny)
    # 1 / x is -inf for -0.0 and a negative subnormal (flushed or not): the sign bit.
    negative = ops.less(ops.divide(ops.ones_like(scores), scores), zero)
    flushed = ops.where(negative, ops.negative(ops.broadcast_to(tiny, ops.shape(scores))), zero)
    return ops.where(small, flushed, scores)


def _lowest_index(mask):
    """Index (int32) of the first True along the last axis of `mask` (0 if none): an
    integer argmax, exact on every backend and a builtin op in TFLite and ONNX."""
    return ops.cast(ops.argmax(ops.cast(mask, "int32"), axis=-1), "int32")


def argmax_with_tiebreak(scores, second):
    """Per-sample index of the best of `scores` `[B, K]`; exact ties go to the best of
    `second` among the tied components, then to the lowest of those.

    NaN policy: a NaN in `scores` or `second` counts as -inf, so a component whose score
    is NaN is never kept unless every component's is NaN (or -inf); then `second` decides,
    and if it is NaN too, the lowest index. The result is the same in eager, `tf.function`
    and XLA (see `argmax`). Finite scores are unaffected.

    When both permute exactly with a circular shift of the input (as float64 scores do,
    see `reductions`), so does the winner, except between components tied in both.
    """
    best = _is_best(scores)
    second = ops.where(best, _nan_to_neg_inf(second), float("-inf"))
    # The lowest index of the components tied in both.
    return _lowest_index(ops.logical_and(best, ops.equal(second, _row_max(second))))


def has_tie(scores):
    """True if any sample has two or more components tied for the best score (NaN
    counting as -inf, as in `argmax_with_tiebreak`)."""
    return ops.any(ops.sum(ops.cast(_is_best(scores), "int32"), axis=-1) > 1)


class _PolyphaseDownsampling(keras.layers.Layer):
    """Shared machinery: anti-aliasing, wrap-padding, split, per-sample selection.

    Subclasses implement `_select(x, training)` on the padded input `x` (divisible by the
    stride), returning `(probs, index)`: `index` is a per-sample int tensor when the
    selection is hard (one gather of the kept pixels then does the work) and `None` when
    `probs` must be used as weights over the split components.
    """

    def __init__(self, stride=2, antialias=None, score_unfiltered=False,
                 return_probs=False, **kwargs):
        super().__init__(**kwargs)
        self.stride = _validation.check_stride(stride)
        self.antialias = serialize_antialias(antialias)
        self.antialias_layer = get_antialias(antialias, name="antialias")
        self.score_unfiltered = bool(score_unfiltered)
        self.return_probs = bool(return_probs)
        self.num_components = stride * stride

    def _components_shape(self, input_shape):
        b, h, w, c = input_shape
        s = self.stride
        return (b, s * s, None if h is None else -(-h // s), None if w is None else -(-w // s), c)

    def build(self, input_shape):
        _validation.check_rank4(self, input_shape)
        if self.antialias_layer is not None:
            self.antialias_layer.build(input_shape)

    def _check_probs(self, inputs, probs):
        shape = tuple(probs.shape)
        if len(shape) != 2 or shape[1] != self.num_components:
            raise ValueError(
                f"{self.__class__.__name__}(stride={self.stride}) expects `probs` of shape "
                f"[batch, {self.num_components}] (one weight per polyphase component), as "
                f"returned by a paired downsampler with the same stride; got shape {shape}."
            )
        _validation.check_probs_batch(self, inputs.shape, shape)

    def call(self, inputs, probs=None, training=None):
        _validation.check_float_dtype(self, inputs.dtype)
        _validation.check_nonempty(self, inputs.shape)
        x = inputs
        if self.antialias_layer is not None:
            x = self.antialias_layer(inputs, training=training)
        x = pad_to_multiple(x, self.stride)
        if probs is not None:
            self._check_probs(inputs, probs)
            probs = ops.cast(probs, _validation.scoring_dtype(x.dtype))
            outputs = select_weighted(polyphase_split(x, self.stride), probs)
        else:
            scored = x
            if self.score_unfiltered and self.antialias_layer is not None:
                scored = pad_to_multiple(inputs, self.stride)
            probs, index = self._select(scored, training)
            if index is None:
                outputs = select_weighted(polyphase_split(x, self.stride), probs)
            else:
                # Only the kept pixels are read: no split of the whole input.
                outputs = gather_component(x, self.stride, index)
        if self.return_probs:
            return outputs, probs
        return outputs

    def compute_output_shape(self, inputs_shape, probs_shape=None):
        _validation.check_nonempty(self, inputs_shape)
        b, _, h, w, c = self._components_shape(inputs_shape)
        if self.return_probs:
            return (b, h, w, c), (b, self.num_components)
        return (b, h, w, c)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "stride": self.stride,
                "antialias": self.antialias,
                "score_unfiltered": self.score_unfiltered,
                "return_probs": self.return_probs,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="lps_keras")
class APSDownsampling2D(_PolyphaseDownsampling):
    """Adaptive polyphase sampling: keep the polyphase component with the largest norm.

    Splits the input into its `stride**2` polyphase components and, per sample, keeps the
    one with the largest norm (or the one that another `norm=` criterion picks). With
    circular padding upstream and sizes divisible by `stride`, `APS(roll(x))` is a circular
    shift of `APS(x)` on the low-resolution grid.
    Odd sizes are wrap-padded to a multiple of `stride` (usable, but without the guarantee).
    The guarantee is bitwise: norms are summed in float64, so a shift, which changes the
    order in which pixels are added, never changes which component wins, and components
    tied exactly are ranked by the sum of their squared per-pixel norms. The one exception:
    components tied in both (e.g. a constant input) go to the lowest index, which a shift
    can change. Per-pixel terms are float32 under mixed precision.

    NaN: a component whose norm is NaN (it contains a NaN) is never kept unless every
    component's is, then the lowest index is; the same component in eager, `tf.function`
    and XLA (see `argmax_with_tiebreak`). Inputs of height or width 0 are rejected.

    Args:
        stride: int >= 2, the subsampling factor per axis.
        norm: the selection criterion. `"l2"` (default), `"l1"`, `"linf"`: keep the
            component with the largest norm (`"linf"` is the official code's `l_infty`).
            The official APS code (achaman2/truly_shift_invariant_cnns,
            `get_polyphase_indices_v2`) also has `"l2_min"` and `"l1_min"`: keep the
            component with the smallest l2/l1 norm (`torch.argmin`), and `"non_abs_max"`:
            keep the component holding the largest signed value (max over pixels and
            channels, no abs). Same sums/maxima as the official code, accumulated
            order-free in float64. Ties: for the max criteria as above (largest spread);
            for the `_min` criteria the component with the smallest spread (the sum of
            squared per-pixel norms) among those tied for the smallest norm, which follows
            a shift as well; the official code takes the lowest index in every case.
        antialias: None, a stride-1 layer, or `"lowpassN"`/`"ddacN"` (N in 1-7): a blur
            applied before selection.
        score_unfiltered: if True, norms are taken on the unfiltered input while the
            filtered input is returned.
        return_probs: if True, `call` returns `(outputs, probs)`; `probs` is a float32
            one-hot `[batch, stride**2]` that a paired layer can reuse.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: float tensor `[B, H, W, C]`.
        probs: optional `[B, stride**2]` selection to apply instead of computing one
            (used for residual shortcuts), for the same batch: a batch size that differs
            from that of `inputs` raises a ValueError when both are known statically.
        training: unused except by the anti-aliasing layer.

    Example:

    >>> aps = APSDownsampling2D(stride=2, return_probs=True)
    >>> y, probs = aps(keras.random.normal((2, 8, 8, 3)))
    >>> tuple(y.shape), tuple(probs.shape)
    ((2, 4, 4, 3), (2, 4))
    """

    def __init__(self, stride=2, norm="l2", antialias=None, score_unfiltered=False,
                 return_probs=False, **kwargs):
        super().__init__(stride=stride, antialias=antialias,
                         score_unfiltered=score_unfiltered, return_probs=return_probs,
                         **kwargs)
        self.norm = _validation.check_choice("norm", norm, NORMS)
        self._statistic, self._minimise = _CRITERIA[self.norm]

    def component_norms(self, x):
        """Per-sample criterion values `[B, stride**2]` of the padded input's components
        in float64: the norm (squared for l2 and l2_min: same ranking), or the largest
        signed value for `non_abs_max`. The layer keeps the largest, or the smallest for
        the `_min` criteria. Per-pixel terms are computed in at least float32 and summed
        in float64, so the values for `roll(x)` permute those of `x` exactly."""
        x = ops.cast(x, _validation.scoring_dtype(x.dtype))
        return component_norms(x, self.stride, self._statistic)

    def _select(self, x, training):
        x = ops.stop_gradient(ops.cast(x, _validation.scoring_dtype(x.dtype)))
        norms, spread = component_norms(x, self.stride, self._statistic, with_spread=True)
        if self._minimise:
            # Smallest norm, ties to the smallest spread; NaN (-NaN) still counts as -inf.
            norms, spread = -norms, -spread
        index = argmax_with_tiebreak(norms, spread)
        return ops.one_hot(index, self.num_components, dtype=x.dtype), index

    def get_config(self):
        config = super().get_config()
        config.update({"norm": self.norm})
        return config


TRAIN_MODES = ("gumbel", "softmax")
INFERENCE_MODES = ("argmax", "softmax")


@keras.saving.register_keras_serializable(package="lps_keras")
class LPSDownsampling2D(_PolyphaseDownsampling):
    """Learnable polyphase sampling: a small shared CNN scores each polyphase component.

    At inference the best-scoring component is kept (`inference_mode="argmax"`), which is
    exactly shift-equivariant like APS but with a learned criterion. In training the
    selection is relaxed with a Gumbel-softmax (or a plain softmax) at temperature `tau`,
    held in the non-trainable variable `self.tau` so `TemperatureSchedule` can anneal it.
    Logits and softmax are float64 (pooled features and everything after them; see
    `reductions`), `probs` float32; outputs are in the layer's compute dtype. At inference
    the argmax commutes with circular shifts bit for bit; components tied exactly for the
    best logit are ranked by the l2 norm of the scored input, and only components tied in
    both (e.g. a constant input) go to the lowest index, which a shift can change.
    A NaN logit counts as -inf (never kept unless all are NaN, then the lowest index),
    so eager, `tf.function` and XLA keep the same component (see `argmax_with_tiebreak`).

    Args:
        stride: int >= 2.
        logits_model: scorer name, one of `"conv"`, `"conv_skip"`, `"attention"`,
            `"attention_bn"`, `"graph"`, `"perceptron"`.
        hidden_channels: scorer width; None uses the input channels.
        antialias: None, a stride-1 layer, or `"lowpassN"`/`"ddacN"`.
        score_unfiltered: if True, score the unfiltered input, return the filtered one.
        tau: initial softmax temperature (> 0).
        train_mode: `"gumbel"` (Gumbel-softmax sample) or `"softmax"`.
        inference_mode: `"argmax"` (hard, exact invariance) or `"softmax"`.
        hard: if True, training uses a straight-through estimator: one-hot forward values,
            gradients of the soft relaxation.
        return_probs: if True, `call` returns `(outputs, probs)` (float32 `[B, stride**2]`).
        padding_mode: padding of the scorer convolutions (`"circular"` keeps invariance).
        seed: int seed for the Gumbel noise (None: random). Each replica of a
            `tf.distribute` strategy draws different noise.
        scorer_head: `"single"` (default: the scorer ends in a bias-free one-filter
            conv) or `"official"`: the last layer of the official code for the `conv`,
            `conv_skip` and `perceptron` scorers (an h->h conv with bias averaged over
            its outputs; for `perceptron` a single 1x1 conv with bias); see `scorers`.
            Other scorers accept only `"single"`.
        scorer_init: `"keras"` (default: Keras' initialisers) or `"torch"`: PyTorch's
            default initialisation of the scorer's convs and dense layers, kernels and
            biases `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`, as in the official code.
        scorer_bn_epsilon: BatchNorm epsilon of the `attention_bn` scorer (default 1e-3;
            official 1e-5). Unused by the other scorers.
        scorer_bn_momentum: BatchNorm momentum of the `attention_bn` scorer (default
            0.99; the official PyTorch momentum 0.1 is 0.9). Unused by the other scorers.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: float tensor `[B, H, W, C]`.
        probs: optional `[B, stride**2]` selection to apply instead of scoring (same
            batch as `inputs`, checked statically as for APS).
        training: Python bool; selects the relaxed (True) or inference (False) path.

    Example:

    >>> lps = LPSDownsampling2D(stride=2, logits_model="conv", hidden_channels=8)
    >>> y = lps(keras.random.normal((2, 8, 8, 3)), training=False)
    >>> tuple(y.shape)
    (2, 4, 4, 3)
    """

    def __init__(self, stride=2, logits_model="conv", hidden_channels=None, antialias=None,
                 score_unfiltered=False, tau=1.0, train_mode="gumbel",
                 inference_mode="argmax", hard=False, return_probs=False,
                 padding_mode="circular", seed=None, scorer_head="single",
                 scorer_init="keras", scorer_bn_epsilon=1e-3, scorer_bn_momentum=0.99,
                 **kwargs):
        super().__init__(stride=stride, antialias=antialias,
                         score_unfiltered=score_unfiltered, return_probs=return_probs,
                         **kwargs)
        _validation.check_choice("logits_model", logits_model, SCORERS)
        _validation.check_choice("train_mode", train_mode, TRAIN_MODES)
        _validation.check_choice("inference_mode", inference_mode, INFERENCE_MODES)
        _validation.check_choice("padding_mode", padding_mode, _validation.PADDING_MODES)
        _validation.check_choice("scorer_head", scorer_head, HEADS)
        _validation.check_choice("scorer_init", scorer_init, INITS)
        if scorer_head == "official" and logits_model not in OFFICIAL_HEAD_SCORERS:
            raise ValueError(
                f"`scorer_head='official'` exists for logits_model in "
                f"{OFFICIAL_HEAD_SCORERS}; got logits_model={logits_model!r}, whose "
                "official counterpart differs in structure. Use scorer_head='single'."
            )
        scorer_bn_epsilon = _validation.check_positive_number(
            "scorer_bn_epsilon", scorer_bn_epsilon)
        scorer_bn_momentum = _validation.check_unit_interval(
            "scorer_bn_momentum", scorer_bn_momentum)
        tau = _validation.check_positive_number("tau", tau)
        hidden_channels = _validation.check_positive_int(
            "hidden_channels", hidden_channels, optional=True)
        if seed is not None and not _validation.is_int(seed):
            raise ValueError(f"`seed` must be None or an int; got {seed!r}.")
        seed = None if seed is None else int(seed)
        self.logits_model = logits_model
        self.hidden_channels = hidden_channels
        self.initial_tau = float(tau)
        self.train_mode = train_mode
        self.inference_mode = inference_mode
        self.hard = bool(hard)
        self.padding_mode = padding_mode
        self.seed = seed
        self.scorer_head = scorer_head
        self.scorer_init = scorer_init
        self.scorer_bn_epsilon = scorer_bn_epsilon
        self.scorer_bn_momentum = scorer_bn_momentum
        self.scorer = get_scorer(logits_model, hidden_channels, padding_mode,
                                 dtype=_validation.scoring_dtype(self.compute_dtype),
                                 head=scorer_head, init=scorer_init,
                                 bn_epsilon=scorer_bn_epsilon,
                                 bn_momentum=scorer_bn_momentum)
        self.seed_generator = ReplicaSeedGenerator(seed)

    def build(self, input_shape):
        super().build(input_shape)
        self.tau = self.add_weight(
            name="tau",
            shape=(),
            dtype="float32",
            initializer=keras.initializers.Constant(self.initial_tau),
            trainable=False,
            autocast=False,
        )
        self.scorer.build(self._components_shape(input_shape))

    def compute_logits(self, components, training=None):
        """Scorer logits `[B, stride**2]` (float64) of split components
        `[B, stride**2, H/s, W/s, C]` (see `polyphase_split`).

        Per-pixel features run in the scorer's dtype (float32, or float64 for float64
        layers); the pooling and everything after it run in float64, so the logits of a
        shifted input are a permutation of the unshifted ones, bit for bit."""
        return self.scorer(components, training=training)

    def _input_norms(self, x):
        """l2 norms of the scored input's components: the tie-break between components
        whose logits tie exactly (e.g. a scorer whose features are all zero). Computed
        only when some sample has such a tie."""
        return component_norms(ops.cast(x, _validation.scoring_dtype(x.dtype)),
                               self.stride, "l2")

    def _hard_logits(self, components):
        """Inference logits for the argmax, with the NaN policy applied to the input: a
        component holding a NaN gets a NaN logit (never kept, see `argmax_with_tiebreak`)
        and is scored as zeros, so no NaN reaches the scorer. Kernels differ in how they
        pass NaN on (a fused ReLU may turn it into 0, attention mixes it into every
        component), which would make eager, `tf.function` and XLA rank differently.
        Finite inputs are scored unchanged."""
        nan = ops.isnan(components)
        has_nan = ops.any(nan, axis=(2, 3, 4))
        logits = self.compute_logits(ops.where(nan, 0.0, components), training=False)
        return ops.where(has_nan, float("nan"), logits)

    def _select(self, x, training):
        components = polyphase_split(x, self.stride)
        if not training and self.inference_mode == "argmax":
            logits = self._hard_logits(components)
        else:
            logits = self.compute_logits(components, training=training)
        probs_dtype = _validation.scoring_dtype(x.dtype)
        tau = ops.cast(self.tau, logits.dtype)
        if not training:
            if self.inference_mode == "argmax":
                index = ops.cond(
                    has_tie(logits),
                    lambda: argmax_with_tiebreak(logits, self._input_norms(x)),
                    lambda: argmax(logits),
                )
                return ops.one_hot(index, self.num_components, dtype=probs_dtype), index
            return ops.cast(ops.softmax(logits / tau, axis=-1), probs_dtype), None
        if self.train_mode == "gumbel":
            # Gumbel(0, 1) noise via -log(-log U); U bounded away from 0 and 1.
            u = keras.random.uniform(
                ops.shape(logits), minval=1e-7, maxval=1.0 - 1e-7, dtype=probs_dtype,
                seed=self.seed_generator,
            )
            logits = logits - ops.cast(ops.log(-ops.log(u)), logits.dtype)
        soft = ops.cast(ops.softmax(logits / tau, axis=-1), probs_dtype)
        if self.hard:
            one_hot = ops.one_hot(argmax(soft), self.num_components,
                                  dtype=probs_dtype)
            # Straight-through: forward one-hot, backward the soft gradient.
            return soft + ops.stop_gradient(one_hot - soft), None
        return soft, None

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "logits_model": self.logits_model,
                "hidden_channels": self.hidden_channels,
                "tau": self.initial_tau,
                "train_mode": self.train_mode,
                "inference_mode": self.inference_mode,
                "hard": self.hard,
                "padding_mode": self.padding_mode,
                "seed": self.seed,
                "scorer_head": self.scorer_head,
                "scorer_init": self.scorer_init,
                "scorer_bn_epsilon": self.scorer_bn_epsilon,
                "scorer_bn_momentum": self.scorer_bn_momentum,
            }
        )
        return config
