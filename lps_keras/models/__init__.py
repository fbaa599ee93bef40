"""Shift-invariant classifiers and shift-equivariant segmenters."""

from lps_keras.models.resnet import (
    ResNetBackbone,
    resnet,
    resnet18,
    resnet20,
    resnet34,
    resnet50,
    resnet56,
    resnet101,
    resnet_features,
)
from lps_keras.models.sampling import SamplingSpec

__all__ = [
    "resnet",
    "resnet18",
    "resnet20",
    "resnet34",
    "resnet50",
    "resnet56",
    "resnet101",
    "resnet_features",
    "SamplingSpec",
    "ResNetBackbone",
]

from lps_keras.models.deeplab import deeplabv3plus  # noqa: E402

__all__ += ["deeplabv3plus"]

from lps_keras.models.unet import UNetEncoder, unet, unet_features  # noqa: E402

__all__ += ["unet", "unet_features", "UNetEncoder"]
