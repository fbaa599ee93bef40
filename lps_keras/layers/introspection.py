"""Finding the LPS layers inside a model (nested models and custom layers included)."""

from lps_keras.layers.downsampling import LPSDownsampling2D

__all__ = ["lps_layers"]


def _walk_layers(layer, seen):
    if id(layer) in seen:
        return
    seen[id(layer)] = layer
    # `_layers` tracks every sublayer, including those kept as attributes of custom layers
    # and the layers of nested models; `.layers` is the public fallback.
    children = getattr(layer, "_layers", None)
    if children is None:
        children = getattr(layer, "layers", [])
    for child in children:
        _walk_layers(child, seen)


def lps_layers(model):
    """Every `LPSDownsampling2D` inside `model`, nested models and layers included.

    Each layer appears once even when it is shared. Accepts a model or a single layer.

    Example:

    >>> import keras
    >>> inner = keras.Sequential([keras.Input((8, 8, 4)), LPSDownsampling2D()])
    >>> outer = keras.Sequential([keras.Input((16, 16, 4)), LPSDownsampling2D(), inner])
    >>> len(lps_layers(outer))
    2
    """
    seen = {}
    _walk_layers(model, seen)
    return [layer for layer in seen.values() if isinstance(layer, LPSDownsampling2D)]
