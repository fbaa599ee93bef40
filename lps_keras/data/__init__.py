"""Datasets and input pipelines for lps_keras.

Nothing here downloads: data is generated (`synthetic_shapes`, `synthetic_shapes_seg`,
`synthetic_mri`), read from local files in the official formats (CIFAR-10 pickles,
class-per-folder image directories, PASCAL VOC 2012, fastMRI single-coil HDF5 volumes), or
read from an already prepared TFDS directory.

Start with `build_dataset(name, split, batch_size, ...)` and `dataset_info(name)` (for
`image_folder`, `dataset_info(name, data_dir=...)` also counts its classes). The
loaders behind them are in the submodules (`cifar`, `imagenet`, `voc`, `synthetic`,
`synthetic_mri`, `fastmri`, `augment`); the MRI reconstruction math (masks, centred FFTs,
normalisation) is in `mri`; the dataset table is in `registry`.
"""

from lps_keras.data import augment
from lps_keras.data.augment import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD
from lps_keras.data.errors import CorruptDatasetError, DatasetNotFoundError
from lps_keras.data.pipeline import build_dataset
from lps_keras.data.registry import DATASET_NAMES, DatasetInfo, dataset_info

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DATASET_NAMES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CorruptDatasetError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "augment",
    "build_dataset",
    "dataset_info",
]
