"""lps_keras: truly shift-invariant and shift-equivariant CNNs for Keras 3.

Importing the package registers every layer (and the metric and schedules that can appear
in saved models) for Keras deserialization.
"""

from lps_keras import callbacks, export, layers, metrics, models
from lps_keras._version import __version__
from lps_keras.training import schedules

__all__ = ["callbacks", "export", "layers", "metrics", "models", "schedules", "__version__"]
