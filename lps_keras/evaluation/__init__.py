"""The one evaluation path behind `train.py` (`results.json`) and `eval.py`.

- `loading`: `LoadedModel` (a run directory, `.keras` file, SavedModel or in-memory Keras
  model, called on raw pixels) and `load_arrays` / `settings_from_config` (the images a
  run is scored on);
- `runner`: `evaluate`, which applies the protocols of `lps_keras.metrics` with batched,
  compiled forward passes and reports percentages;
- `plots`: `plot_consistency`, `plot_segmentation_examples`, `plot_equivariance` and
  `plot_reconstruction_examples`;
- `shifts`, `predict`, `classification`, `segmentation`, `reconstruction`: the protocols
  themselves (seeded per-image shifts, inference-mode batching, the classification,
  segmentation and reconstruction metrics), published as `lps_keras.metrics`.

Protocols always see raw pixels (0-255): the model (or its SavedModel signature)
normalises, so a standard shift fills with black, as in the papers. Regression data
(image-to-image) has no pixel scale: its arrays are used as the data package gives them.
"""

import importlib

# `loading` and `runner` read data through `lps_keras.data` (tf.data), so they import
# TensorFlow; the protocols (`shifts`, `classification`, `segmentation`, `reconstruction`,
# published as `lps_keras.metrics`) do not. The names below are therefore resolved on first
# access, so that `import lps_keras.metrics` works without TensorFlow (README "Backends").
_LAZY = {
    "LoadedModel": "loading",
    "default_output_dir": "loading",
    "load_arrays": "loading",
    "settings_from_config": "loading",
    "plot_consistency": "plots",
    "plot_equivariance": "plots",
    "plot_reconstruction_examples": "plots",
    "plot_segmentation_examples": "plots",
    "EVAL_MODES": "runner",
    "default_eval_mode": "runner",
    "evaluate": "runner",
    "summary": "runner",
}


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"lps_keras.evaluation.{_LAZY[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lps_keras.evaluation' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "EVAL_MODES",
    "LoadedModel",
    "default_eval_mode",
    "default_output_dir",
    "evaluate",
    "load_arrays",
    "plot_consistency",
    "plot_equivariance",
    "plot_reconstruction_examples",
    "plot_segmentation_examples",
    "settings_from_config",
    "summary",
]
