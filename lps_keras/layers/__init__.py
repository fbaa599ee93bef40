"""Keras layers for shift-invariant and shift-equivariant CNNs."""

import warnings

from lps_keras.layers import reductions as _reductions
from lps_keras.layers.antialias import get_antialias
from lps_keras.layers.batch_norm import TorchBatchNormalization
from lps_keras.layers.ddac import DDAC2D
from lps_keras.layers.downsampling import APSDownsampling2D, LPSDownsampling2D
from lps_keras.layers.initializers import TorchUniform
from lps_keras.layers.introspection import lps_layers
from lps_keras.layers.lowpass import BlurPool2D, LowPassFilter2D
from lps_keras.layers.padding import CircularPad2D, circular_pad
from lps_keras.layers.polyphase import (
    phase_permutation,
    polyphase_merge,
    polyphase_split,
)
from lps_keras.layers.pooling import InvariantGlobalAveragePooling2D
from lps_keras.layers.scorers import (
    SCORERS,
    AttentionBNScorer,
    AttentionScorer,
    ConvScorer,
    ConvSkipScorer,
    GraphScorer,
    PerceptronScorer,
    get_scorer,
)
from lps_keras.layers.upsampling import PolyphaseUpsampling2D

__all__ = [
    "TorchBatchNormalization",
    "APSDownsampling2D",
    "AttentionBNScorer",
    "AttentionScorer",
    "BlurPool2D",
    "CircularPad2D",
    "ConvScorer",
    "ConvSkipScorer",
    "DDAC2D",
    "GraphScorer",
    "InvariantGlobalAveragePooling2D",
    "LPSDownsampling2D",
    "LowPassFilter2D",
    "PerceptronScorer",
    "PolyphaseUpsampling2D",
    "SCORERS",
    "TorchUniform",
    "circular_pad",
    "get_antialias",
    "get_scorer",
    "lps_layers",
    "phase_permutation",
    "polyphase_merge",
    "polyphase_split",
]

if not _reductions.x64_available():
    warnings.warn(
        "lps_keras on JAX without float64 (jax_enable_x64 is off): the selection and pooling "
        "sums run in float32, so shift invariance/equivariance holds up to float32 rounding, "
        "not bit for bit. Set JAX_ENABLE_X64=1 (or jax.config.update('jax_enable_x64', True) "
        "before building a model) for the exact guarantee.", stacklevel=2)
