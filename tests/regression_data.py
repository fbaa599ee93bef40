"""A tiny regression dataset for the reconstruction tests, standing in for `synthetic_mri`.

`install(monkeypatch)` registers `tiny_mri` (16x16x1, task "regression", protocol
"reconstruction", mean 0 / std 1) in `lps_keras.data.registry` and a
`lps_keras.data.load_arrays` serving it, following the data package's contract for
regression data (float32 `(inputs, targets)` `[N, H, W, 1]`). Without `monkeypatch`
(a subprocess launcher) it patches for the life of the process. The registry itself is
not edited.
"""

import numpy as np

from lps_keras import data
from lps_keras.data import registry

NAME = "tiny_mri"
SIDE = 16
INFO = registry.DatasetInfo(name=NAME, task="regression", num_classes=None,
                            image_shape=(SIDE, SIDE, 1), mean=(0.0,), std=(1.0,),
                            splits=("train", "test"), default_augment="none",
                            protocol="reconstruction")


def tiny_arrays(split="test", num_examples=None):
    """Smooth positive targets and noisy inputs (the 'zero-filled' reconstructions)."""
    n = num_examples or 12
    rng = np.random.default_rng(0 if split == "test" else 1)
    yy, xx = np.meshgrid(np.arange(SIDE), np.arange(SIDE), indexing="ij")
    centres = rng.uniform(3, SIDE - 3, size=(n, 2))
    targets = np.exp(-((yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2)
                     / 8.0)[..., None] * 3.0
    inputs = targets + 0.3 * rng.normal(size=targets.shape)
    return inputs.astype(np.float32), targets.astype(np.float32)


def _load_arrays(name, split, num_examples=None, data_dir=None):
    if name != NAME:
        raise ValueError(f"test stub: only {NAME}")
    return tiny_arrays(split, num_examples)


def install(monkeypatch=None):
    if monkeypatch is None:
        registry._INFOS[NAME] = INFO
        data.load_arrays = _load_arrays
        return
    monkeypatch.setitem(registry._INFOS, NAME, INFO)
    monkeypatch.setattr(data, "load_arrays", _load_arrays, raising=False)
