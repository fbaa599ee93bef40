"""lps_keras: truly shift-invariant and shift-equivariant CNNs for Keras 3.

Importing the package registers every layer (and the metric and schedules that can appear
in saved models) for Keras deserialization.

The package root is backend-neutral: it does not import TensorFlow, so it works with
`KERAS_BACKEND=jax` without TensorFlow installed. `lps_keras.export` (TensorFlow
SavedModels) is loaded on first access (`lps_keras.export` or `from lps_keras import
export`); so are the TensorFlow-only subpackages `data`, `training.trainer` and the
evaluation runner (README "Backends").
"""

import importlib

from lps_keras import callbacks, layers, metrics, models
from lps_keras._version import __version__
from lps_keras.training import schedules

__all__ = ["callbacks", "export", "layers", "metrics", "models", "schedules", "__version__"]

# Submodules that import TensorFlow: loaded on first attribute access, not at import.
_LAZY_SUBMODULES = ("export",)


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"lps_keras.{name}")
    raise AttributeError(f"module 'lps_keras' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))
