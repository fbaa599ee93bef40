"""lps_keras: truly shift-invariant and shift-equivariant CNNs for Keras 3.

Importing the package registers every layer for Keras deserialization.
"""

from lps_keras import layers

__version__ = "0.1.0"

__all__ = ["layers", "__version__"]
