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

from lps_keras.evaluation.loading import (
    LoadedModel,
    default_output_dir,
    load_arrays,
    settings_from_config,
)
from lps_keras.evaluation.plots import (
    plot_consistency,
    plot_equivariance,
    plot_reconstruction_examples,
    plot_segmentation_examples,
)
from lps_keras.evaluation.runner import EVAL_MODES, default_eval_mode, evaluate, summary

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
