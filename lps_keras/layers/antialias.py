"""Resolves the `antialias=` argument of the polyphase layers."""

import re

import keras

from lps_keras.layers.ddac import DDAC2D
from lps_keras.layers.lowpass import LowPassFilter2D

_SPEC = re.compile(r"^(lowpass|ddac)([1-7])$")


def get_antialias(spec, padding_mode="circular", name=None, **kwargs):
    """Turns `None`, a layer, a config dict or a string like `"lowpass3"`/`"ddac3"` into a layer.

    Returns `None` for no anti-aliasing. The layer must keep the spatial size (stride 1).
    `kwargs` go to the constructor of a layer named by a string (e.g. `softmax="joint"`,
    `epsilon=1e-5` for the DDAC of the papers' code); they are refused with a layer or a
    config dict, which already hold their settings.
    """
    if kwargs and not isinstance(spec, str):
        raise ValueError(
            f"Antialias keyword arguments {sorted(kwargs)} apply to a string `antialias` "
            f"('lowpassN'/'ddacN') only; got {spec!r}.")
    if spec is None or spec == "none":
        return None
    if isinstance(spec, keras.layers.Layer):
        return spec
    if isinstance(spec, dict):
        return keras.saving.deserialize_keras_object(spec)
    if isinstance(spec, str):
        match = _SPEC.match(spec)
        if match:
            kind, size = match.group(1), int(match.group(2))
            if kind == "lowpass":
                return LowPassFilter2D(size, padding_mode=padding_mode, name=name, **kwargs)
            return DDAC2D(kernel_size=size, padding_mode=padding_mode, name=name, **kwargs)
    raise ValueError(
        "`antialias` must be None, a Keras layer, or a string 'lowpassN' (N in 1-7) or "
        f"'ddacN' (N in 1-7), e.g. 'lowpass3' or 'ddac3'; got {spec!r}."
    )


def serialize_antialias(spec):
    """Config value for `antialias`: strings stay strings, layers become config dicts."""
    if isinstance(spec, keras.layers.Layer):
        return keras.saving.serialize_keras_object(spec)
    return spec
